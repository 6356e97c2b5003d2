"""The kernel manager of the notebook run: a Jupyter kernel started inside the bubblewrap
sandbox (:mod:`autograder.engine.sandbox`), connected over Unix sockets since it has no network."""
from __future__ import annotations

import os
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Instance, Integer, Unicode

from autograder.engine.sandbox import default_sandbox
from autograder.nbgrader_hooks.settings import grading_device


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel started inside the bubblewrap sandbox, talking over Unix sockets in its workdir."""

    workdir = Instance(Path, allow_none=True)
    cpu_seconds = Integer(900)
    device = Unicode("")
    assignment = Unicode("")  # its public spec may set its own scratch and memory limits

    def sandbox(self):
        return default_sandbox(grading_device(self.device), self.assignment or None, cpu_seconds=self.cpu_seconds)

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        return self.sandbox().wrap(cmd, self.workdir)

    def write_connection_file(self, **kwargs):
        super().write_connection_file(**kwargs)
        if os.geteuid() == 0:  # the kernel runs as nobody and must read its connection file
            os.chown(self.connection_file, 65534, 65534)
