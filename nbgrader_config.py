"""nbgrader configuration for the course (repo root = course root).

solutions/NAME/ (instructor "source" notebooks) -> `nbgrader generate_assignment NAME`
-> assignments/NAME/ (student "release" notebooks, committed). Submissions, autograded
notebooks, feedback and the gradebook stay out of git. The grading pipeline
(autograder/) adds its sandbox and out-of-kernel grading on top of this file.
"""
import os

c = get_config()  # noqa: F821  (provided by traitlets when nbgrader loads this file)

c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"
c.CourseDirectory.course_id = "10423-lec4"
# collect copies regular files only, never following a link a student put in inbound
# (autograder/exchange.py: a symlink there would otherwise read the solutions as root)
c.ExchangeFactory.collect = "autograder.exchange.SafeCollect"

# Extension hook for the grading pipeline (sandbox, trusted grading); absent until built.
_pipeline = os.path.join(c.CourseDirectory.root, "autograder", "nbgrader_hooks", "config.py")
if os.path.exists(_pipeline):
    load_subconfig(_pipeline)  # noqa: F821
