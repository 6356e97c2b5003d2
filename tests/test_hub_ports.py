"""`make hub`'s spawner never gives two servers of the hub the same port (hub/local_spawner.py).

The race it closes (a port handed out twice before the first server binds it; a restart on an old
port another server took) cannot be forced in a real hub on demand, so these tests drive
:class:`CourseLocalSpawner` with JupyterHub's own start replaced by a stand-in that records the
port, and with a port draw that repeats itself as ``random_port`` may. The real hub runs the same
class in tests/test_hub.py (every local-mode hub there spawns with it).
"""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from jupyterhub.spawner import LocalProcessSpawner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hub"))
import local_spawner  # noqa: E402  (hub/local_spawner.py)
from local_spawner import CourseLocalSpawner, PortsExhausted, pick_port  # noqa: E402


def draws(*ports):
    """A port draw that returns ``ports`` in order (then repeats the last), as random_port may."""
    queue = list(ports)
    return lambda: queue.pop(0) if len(queue) > 1 else queue[0]


@pytest.fixture
def fake_start(monkeypatch):
    """JupyterHub's LocalProcessSpawner.start and .stop replaced: no process, the port is returned."""
    started, stopped = [], []

    async def start(self):
        started.append((self.user.name, self.port))
        return ("127.0.0.1", self.port)

    async def stop(self, now=False):
        stopped.append(self.user.name)

    monkeypatch.setattr(LocalProcessSpawner, "start", start)
    monkeypatch.setattr(LocalProcessSpawner, "stop", stop)
    monkeypatch.setattr(CourseLocalSpawner, "ports_in_use", {})
    return started, stopped


def spawner(name: str) -> CourseLocalSpawner:
    return CourseLocalSpawner(user=SimpleNamespace(name=name, url=f"/user/{name}/", escaped_name=name), name="")


def test_pick_port_skips_taken_ports_and_says_when_none_is_left():
    assert pick_port({40001}, draws(40001, 40001, 40003)) == 40003
    assert pick_port(set(), draws(40001)) == 40001
    with pytest.raises(PortsExhausted, match="no free port outside the 1 held by this hub's servers"):
        pick_port({40001}, draws(40001))


def test_two_starts_handed_the_same_port_get_different_ports(fake_start, monkeypatch):
    started, _ = fake_start
    monkeypatch.setattr(local_spawner, "random_port", draws(40001, 40001, 40002))
    a, b = spawner("student1"), spawner("student2")
    asyncio.run(a.start())
    asyncio.run(b.start())
    assert started == [("student1", 40001), ("student2", 40002)]
    assert CourseLocalSpawner.ports_in_use == {"student1/": 40001, "student2/": 40002}


def test_a_restart_does_not_reuse_a_port_another_server_took(fake_start, monkeypatch):
    started, stopped = fake_start
    a, b = spawner("student1"), spawner("student2")
    monkeypatch.setattr(local_spawner, "random_port", draws(40001))
    asyncio.run(a.start())
    asyncio.run(a.stop())
    assert stopped == ["student1"] and CourseLocalSpawner.ports_in_use == {}
    asyncio.run(b.start())  # student2 gets student1's old port, now free
    # LocalProcessSpawner would restart student1 on its old port (a.port is still 40001): not ours
    monkeypatch.setattr(local_spawner, "random_port", draws(40001, 40005))
    asyncio.run(a.start())
    assert started[-2:] == [("student2", 40001), ("student1", 40005)]


def test_a_failed_start_frees_its_port(fake_start, monkeypatch):
    async def fails(self):
        raise PermissionError("cannot run jupyterhub-singleuser")

    monkeypatch.setattr(LocalProcessSpawner, "start", fails)
    monkeypatch.setattr(local_spawner, "random_port", draws(40001))
    with pytest.raises(PermissionError):
        asyncio.run(spawner("student1").start())
    assert CourseLocalSpawner.ports_in_use == {}


def test_the_hubs_internal_ports_are_distinct_and_not_its_public_port(monkeypatch):
    """hub/hub.py's API ports: the kernel may hand out a just-closed port again, even the public one."""
    import hub as course_hub  # hub/hub.py

    bound: list[int] = []
    real_socket = course_hub.socket.socket

    class Repeating:  # a socket whose bind(0) returns the public port first, as a recycled port would
        def __init__(self):
            self.sock = real_socket()

        def bind(self, address):
            self.sock.bind(address)
            bound.append(self.sock.getsockname()[1])

        def getsockname(self):
            return ("127.0.0.1", 40001) if len(bound) == 1 else self.sock.getsockname()

        def close(self):
            self.sock.close()

    monkeypatch.setattr(course_hub.socket, "socket", Repeating)
    ports = course_hub.free_ports(2, exclude={40001})
    assert 40001 not in ports and len(set(ports)) == 2, ports
