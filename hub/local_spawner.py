"""Students' servers as local processes whose ports never collide: `make hub`'s spawner.

JupyterHub's ``LocalProcessSpawner`` picks a server's port with ``random_port()`` (bind to port 0,
read the number, close) and the server binds it seconds later, once JupyterLab has imported (a
minute when 20 servers start at once on 2 cores). In that gap another spawn can be handed the same
number, and a restarted server reuses its old port, which another user's server may hold by
then. The second server then fails to bind (``port_retries = 0``) and exits, but the hub counts
*any* HTTP answer on the port as "up" (``wait_for_http_server``: "even 404"), so it routes the
student to the other user's server: every request answers 404 until the hub's poll notices the
dead process. The load test met it once (``benchmarks/hub_load.py``, 20 students at load ~10: a
"Jupyter Server" 404 page for ``POST /user/student18/assignments/fetch``).

:class:`CourseLocalSpawner` keeps one table per hub of the ports its servers are starting or
running on and gives every start a port outside it (a restart included). It does not cover
processes outside the hub that take a port between the pick and the bind (a kernel, another hub
on the same machine); the server then fails to start and the hub says so (``start_timeout``).
"""
from __future__ import annotations

from typing import ClassVar

from jupyterhub.spawner import LocalProcessSpawner
from jupyterhub.utils import random_port

ATTEMPTS = 100  # random ports tried before giving up (each is already free by the kernel's account)


class PortsExhausted(RuntimeError):
    """No free port outside the hub's table after :data:`ATTEMPTS` tries."""


def pick_port(taken: set[int], draw=None) -> int:
    """A port ``draw()`` (default: JupyterHub's ``random_port``) returns that is not in ``taken``
    (the ports other servers of this hub hold)."""
    for _ in range(ATTEMPTS):
        port = (draw or random_port)()
        if port not in taken:
            return port
    raise PortsExhausted(f"no free port outside the {len(taken)} held by this hub's servers after "
                         f"{ATTEMPTS} tries: is the machine out of ephemeral ports (ss -tln)?")


class CourseLocalSpawner(LocalProcessSpawner):
    """LocalProcessSpawner that never gives two of the hub's servers the same port."""

    # "user/server name" -> port, for every server this hub process is starting or running. The entry
    # of a server that died on its own (JupyterHub then skips stop()) stays until that user's next
    # start replaces it: it only keeps one more port out.
    ports_in_use: ClassVar[dict[str, int]] = {}

    @property
    def _key(self) -> str:
        return f"{self.user.name}/{self.name}"

    async def start(self):
        taken = {port for key, port in self.ports_in_use.items() if key != self._key}
        self.port = pick_port(taken)  # a fresh port on every start: the old one may be someone else's now
        self.ports_in_use[self._key] = self.port
        try:
            return await super().start()
        except BaseException:
            self.ports_in_use.pop(self._key, None)
            raise

    async def stop(self, now: bool = False):
        try:
            return await super().stop(now=now)
        finally:
            self.ports_in_use.pop(self._key, None)
