"""First autograde step: start the hidden suite on the submission's code in the background,
beside the notebook run."""
from __future__ import annotations

import concurrent.futures

from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer, Unicode

from autograder.nbgrader_hooks.hidden_suite import _suite_and_code, _timed_grade
from autograder.nbgrader_hooks.settings import grading_device


class StartTrustedGrading(NbGraderPreprocessor):
    """First step of autograding: start the hidden suite on the submission's code in a
    background thread, so that it (its own grading sandbox) runs while the notebook runs in
    the kernel sandbox; :class:`TrustedVerdicts` takes the result. The code comes from the
    sanitized notebook's cell sources, which executing the notebook does not change
    (:class:`TrustedVerdicts` checks that, and grades again if they differ)."""

    device = Unicode("", help="cpu / cuda; empty: cuda when torch sees a GPU, else cpu").tag(config=True)
    call_timeout = Integer(None, allow_none=True,
                           help="seconds per hidden call; None: each call's own limit").tag(config=True)

    def preprocess(self, nb, resources):
        suite, code = _suite_and_code(self.config, resources, nb)
        device = grading_device(self.device)
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hidden-suite")
        future = pool.submit(_timed_grade, suite, code, device, self.call_timeout)
        pool.shutdown(wait=False)
        resources.setdefault("autograder", {})["started"] = (code, device, future)
        return nb, resources
