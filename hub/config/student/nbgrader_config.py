"""nbgrader, student side (what the hub image ships for students; see README "JupyterHub").

The Assignments panel fetches from and submits to the exchange of this course. The hub
sets both values (hub/jupyterhub_config.py); a real image writes them here directly:
    c.CourseDirectory.course_id = "10423-lec4"
    c.Exchange.root = "/srv/nbgrader/exchange"      # shared storage, mode 1777
Submissions are readable only by their author and the course staff (see exchange_hardening.py).
"""
import os
import sys

c = get_config()  # noqa: F821
c.CourseDirectory.course_id = os.environ["LEC4_COURSE_ID"]
c.Exchange.root = os.environ["LEC4_EXCHANGE"]

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from exchange_hardening import PrivateSubmit  # noqa: E402  (hub/exchange_hardening.py)

c.ExchangeFactory.submit = PrivateSubmit
