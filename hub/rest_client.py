"""A user's client of the course hub's REST API: what the tests and the load test drive the hub with.

It does what a student's browser does, through the same endpoints: log in (a token from the
user's password, ``POST /hub/api/users/NAME/tokens``), start and stop the server (with a profile
in Slurm mode), report activity (an open JupyterLab tab), and press the Assignments panel's
buttons (``/user/NAME/assignments/fetch|submit``: nbgrader's server extension, running in the
user's own server, wherever that runs).
"""
from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request


class HubRequestError(AssertionError):
    """The hub answered with a status the caller did not expect (the message has its reply)."""


class Rest:
    """One user's REST client, logged in with ``password`` at the hub ``url``."""

    def __init__(self, url: str, user: str, password: str, course_id: str):
        self.url, self.user, self.course_id = url, user, course_id
        body = {"auth": {"username": user, "password": password}, "note": "lec4 hub REST client"}
        self.token = self.call("POST", f"/hub/api/users/{user}/tokens", body, token=False)["token"]

    def call(self, method: str, path: str, body=None, token: bool = True, expect=(200, 201, 202, 204),
             timeout: float = 300):
        """``method path`` with a JSON ``body``; the decoded reply. Another status: HubRequestError."""
        request = urllib.request.Request(
            self.url + path, method=method, data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json", **({"Authorization": f"token {self.token}"} if token else {})})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                status, text = reply.status, reply.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        if status not in expect:
            raise HubRequestError(f"{self.user}: {method} {path}: {status} {text[:1500]}")
        return json.loads(text) if text.strip().startswith(("{", "[")) else text

    def model(self) -> dict:
        """The hub's account of this user (``servers``: ready, pending, state)."""
        return self.call("GET", f"/hub/api/users/{self.user}")

    def start(self, options: dict | None = None, timeout: float = 300) -> dict:
        """Start the default server (with user ``options``, e.g. a profile); wait until it is ready."""
        self.call("POST", f"/hub/api/users/{self.user}/server", options or {})
        return self.wait(lambda m: m["servers"].get("", {}).get("ready"), timeout, "its server to be ready")

    def stop(self, timeout: float = 120) -> dict:
        self.call("DELETE", f"/hub/api/users/{self.user}/server")
        return self.wait(lambda m: not m["servers"], timeout, "its server to stop")

    def wait(self, done, timeout: float, what: str, every: float = 1) -> dict:
        """Poll :meth:`model` until ``done(model)``; HubRequestError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.model()
            if done(model):
                return model
            time.sleep(every)
        raise HubRequestError(f"{self.user}: timed out after {timeout:.0f} s waiting for {what}: {self.model()}")

    def touch(self) -> None:
        """Report activity, as an open JupyterLab tab does."""
        now = dt.datetime.now(dt.timezone.utc).isoformat()
        self.call("POST", f"/hub/api/users/{self.user}/activity",
                  {"last_activity": now, "servers": {"": {"last_activity": now}}})

    def nbgrader(self, action: str, assignment: str) -> list:
        """The Assignments panel's Fetch / Submit / Fetch Feedback button: the assignment list nbgrader
        replies with (one dict per released or submitted copy, with its ``status``). A refusal
        (``"success": false``, e.g. a submit that failed) raises HubRequestError with nbgrader's words."""
        reply = self.call("POST", f"/user/{self.user}/assignments/{action}",
                          {"course_id": self.course_id, "assignment_id": assignment})
        if not isinstance(reply, dict) or not reply.get("success"):
            raise HubRequestError(f"{self.user}: {action} {assignment}: nbgrader replied {str(reply)[:1500]}")
        return reply["value"]
