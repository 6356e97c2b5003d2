"""Students' servers as Slurm jobs: batchspawner's SlurmSpawner with the course's profiles.

``make hub-slurm`` (``hub/hub.py start --spawner slurm``) runs every user's JupyterLab as a
Slurm job of that user (submitted with ``runuser -u USER -- sbatch``: the hub runs as root, the
job as the student; ``sudo``, batchspawner's default, is not needed). The job runs
``batchspawner-singleuser jupyterhub-singleuser``, which picks a free port on the node it lands
on and reports it to the hub's ``/api/batchspawner``; the hub then routes the user to
``NODE:PORT``. What the job may use comes from the profile the user picks on the spawn page
(:data:`PROFILES`): CPUs, memory and, for the GPU profile, ``--gres=gpu:1``. Slurm enforces them
where its cgroup plugin runs (``TaskPlugin=task/cgroup``, the usual cluster setup); the
single-node Slurm of the tests schedules by them (``SelectTypeParameters=CR_Core_Memory``) but
has no cgroups.

Site settings come from the hub's environment (hub/hub.py passes them on):
``LEC4_SLURM_PARTITION`` (default: the cluster's default partition), ``SLURM_CONF``.
"""
from __future__ import annotations

import html
import os
import shutil

from batchspawner import SlurmSpawner
from traitlets import Dict, Unicode, default

# slug -> what the user sees, what the job asks Slurm for
PROFILES = {
    "cpu": {"name": "CPU", "description": "1 CPU core, 2 GB: the book, hw-conv, the visible tests",
            "nprocs": "1", "memory": "2G", "gres": ""},
    "gpu": {"name": "One GPU", "description": "1 GPU, 4 CPU cores, 16 GB: the attention benchmarks on CUDA",
            "nprocs": "4", "memory": "16G", "gres": "gpu:1"},
}
DEFAULT_PROFILE = "cpu"

# batchspawner's script without --get-user-env (that needs root's --uid; the job is submitted as
# the user and gets the hub's environment for the server through --export) and with the job's
# log in the user's home (readable by them: why a server did not start)
BATCH_SCRIPT = """#!/bin/bash
#SBATCH --output={{homedir}}/.jupyterhub_slurm_%j.log
#SBATCH --job-name=lec4-jupyterlab
#SBATCH --chdir={{homedir}}
#SBATCH --export={{keepvars}}
{% if partition  %}#SBATCH --partition={{partition}}
{% endif %}{% if memory     %}#SBATCH --mem={{memory}}
{% endif %}{% if gres       %}#SBATCH --gres={{gres}}
{% endif %}{% if nprocs     %}#SBATCH --cpus-per-task={{nprocs}}
{% endif %}
set -euo pipefail
trap 'echo SIGTERM received' TERM
{{cmd}}
echo "jupyterhub-singleuser ended gracefully"
"""


class ProfileError(ValueError):
    """An unknown profile on the spawn form or in the REST API's user options."""


class CourseSlurmSpawner(SlurmSpawner):
    """SlurmSpawner with the course's profiles (:data:`PROFILES`) and the user's own submit."""

    profiles = Dict(PROFILES, help="slug -> {name, description, nprocs, memory, gres}").tag(config=True)
    # absolute: the submit runs with the server's environment, whose PATH has no sbin
    exec_prefix = Unicode(f"{shutil.which('runuser') or '/usr/sbin/runuser'} -u {{username}} --").tag(config=True)
    batch_script = Unicode(BATCH_SCRIPT).tag(config=True)

    @default("options_form")
    def _profiles_form(self) -> str:
        rows = []
        for slug, p in self.profiles.items():
            checked = " checked" if slug == DEFAULT_PROFILE else ""
            rows.append(f'<label><input type="radio" name="profile" value="{html.escape(slug)}"{checked}> '
                        f'<b>{html.escape(p["name"])}</b>: {html.escape(p["description"])}</label><br>')
        return "\n".join(rows)

    def options_from_form(self, formdata: dict) -> dict:
        return {"profile": formdata.get("profile", [DEFAULT_PROFILE])[0]}

    def profile(self) -> dict:
        """The chosen profile (user options ``{"profile": slug}``, default :data:`DEFAULT_PROFILE`)."""
        slug = (self.user_options or {}).get("profile", DEFAULT_PROFILE)
        if slug not in self.profiles:
            raise ProfileError(f"unknown profile {slug!r}: expected one of {', '.join(sorted(self.profiles))}")
        return self.profiles[slug]

    def get_req_subvars(self) -> dict:
        """batchspawner's template values, with the profile's CPUs, memory and GPUs."""
        subvars = super().get_req_subvars()
        chosen = self.profile()
        subvars.update(nprocs=chosen["nprocs"], memory=chosen["memory"], gres=chosen["gres"],
                       partition=os.environ.get("LEC4_SLURM_PARTITION", ""))
        return subvars

    def get_env(self) -> dict:
        """The server's environment; sbatch also needs to find the cluster (``SLURM_CONF``)."""
        env = super().get_env()
        if os.environ.get("SLURM_CONF"):
            env["SLURM_CONF"] = os.environ["SLURM_CONF"]
        return env

    async def submit_batch_script(self):
        """Submit; a refusal by sbatch (e.g. a GPU on a cluster without one) becomes the error the
        user sees on the spawn page, with sbatch's own words."""
        self.profile()  # an unknown profile fails before anything is submitted
        try:
            return await super().submit_batch_script()
        except RuntimeError as error:
            raise RuntimeError(f"Slurm refused the server's job ({self.profile()['name']} profile): {error}") from error
