"""The public specification of the graded assignments: one module per assignment.

Everything a student's notebook and the course's autograder must agree on lives here, once:

- :mod:`lec4.homework.checking`: what every assignment shares -- seeded test inputs
  (:func:`~lec4.homework.checking.random_tensor`), the visible tests' comparison with a helpful
  message (:func:`~lec4.homework.checking.check_close`) and *the* forbidden-name rule
  (:func:`~lec4.homework.checking.forbidden_uses`), which the notebooks apply through
  :func:`~lec4.homework.checking.assert_no_forbidden_names` and the autograder applies to the
  submitted code;
- :mod:`lec4.homework.hw_attention`, :mod:`lec4.homework.hw_conv`: per assignment, the graded
  cells and their points, the forbidden names, tolerances, memory allowances, the visible test
  cases and the given code the notebook builds on.

Why a public module: the release notebooks import it (a locked cell that *imports* a value cannot
drift from the grader's copy, because there is no copy), and the hidden-test suites in the private
``autograder`` package import the same objects and add only hidden cases and trusted references.
So nothing here may be secret, and anything here that computes a graded quantity (a visible
test's reference) is listed in that function's ``FORBIDDEN`` names.
"""
