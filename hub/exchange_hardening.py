"""nbgrader's submit, with submissions private to their author and the course staff.

nbgrader 0.9.6 leaves a submission folder in the exchange's inbound 0777 with files 0644:
it is hidden only by its unguessable name (inbound is 2733, not listable). Whoever learns
the name (a shared screen, a log) could read it, and delete or replace its files. Here the
folder becomes 2770 and its files 0640: the inbound folder's group (the instructor's,
set-group-id) reads them, other students get "Permission denied".
"""
import os

from nbgrader.exchange.default.submit import ExchangeSubmit


class PrivateSubmit(ExchangeSubmit):
    """`nbgrader submit` (and the Assignments panel's Submit) with private permissions."""

    def do_copy(self, src, dest):
        """Copy as nbgrader does, then give the submission folder back the inbound's
        set-group-id (copytree copies the source folder's mode, which clears it), so that
        timestamp.txt and submission_secret.txt, written next, also get the staff group."""
        super().do_copy(src, dest)
        if os.path.dirname(os.path.abspath(dest)) != os.path.abspath(self.inbound_path):
            return  # the student's own cache copy
        fresh = dest + ".private"
        os.mkdir(fresh)  # a new folder in inbound inherits its group and set-group-id
        for name in os.listdir(dest):
            os.rename(os.path.join(dest, name), os.path.join(fresh, name))
        os.rmdir(dest)
        os.rename(fresh, dest)

    def copy_files(self):
        super().copy_files()
        dest = os.path.join(self.inbound_path, self.assignment_filename)
        for dirpath, dirnames, filenames in os.walk(dest):
            for name in filenames:
                os.chmod(os.path.join(dirpath, name), 0o640)
            os.chmod(dirpath, 0o2770 if dirpath == dest else 0o2750)
