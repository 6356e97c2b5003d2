"""One hidden-test suite per assignment (see autograder.protocol for the interface)."""
