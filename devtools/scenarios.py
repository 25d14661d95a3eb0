"""Scenario days for the detection rules: one benign day, and one day with each attack.

Both days carry the simulator's everyday traffic (``devtools.simulate``) for one UTC day, with
the near misses a security team sees every day: a few failed logins before a success, a
password change with no token after it, a token created long after a password change, two
tokens of one account with no password change, an administrator's admin scope revoked, a
handful of flows deleted together, profile edits, configuration changes that do not touch
audit logging. The attack day adds, at fixed times, the six attacks ``detection-rules/``
looks for. Everyday user updates change profiles rather than granting admin rights, so the
only admin grant of either day is the attack's.

Access tokens are not in the catalog. A newer Appmixer would log their creation as
"Access Token Created"; the normalizer keeps such an action with ``appmixer.audit.catalog``
false, ``event.action`` ``access_token_created`` and a type guessed from its verb (create),
which is what the token rule matches.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

import orjson

from devtools.simulate import _Generator, _iso

Scenario = Literal["benign", "attack"]
SCENARIOS: tuple[Scenario, ...] = ("benign", "attack")
DAY_MS = 86_400_000
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
BENIGN_DAY_MS = 1_795_392_000_000  # 2026-11-23T00:00:00Z
ATTACK_DAY_MS = BENIGN_DAY_MS + DAY_MS  # 2026-11-24T00:00:00Z
EVERYDAY_EVENTS = 3000  # about one every 29 s: a small installation's day
TOKEN_ACTION = "Access Token Created"  # noqa: S105 (an action name, not a secret)
OTHER_TOKEN_ACTION = "API Token Created"  # noqa: S105
Record = dict[str, Any]


@dataclass(frozen=True)
class Attack:
    """One attack of the attack day: when it starts and whose account carries it."""

    name: str
    start_ms: int  # offset into the day
    actor: int  # index into the world's users
    summary: str


ATTACKS: tuple[Attack, ...] = (
    Attack("failed-logins", 2 * 60 * MINUTE_MS + 13 * MINUTE_MS, 7,
           "12 failed logins for one account within 3 minutes, then a success"),
    Attack("password-then-token", 3 * 60 * MINUTE_MS + 40 * MINUTE_MS, 9,
           "a password change, then an access token created 4 minutes later"),
    Attack("mass-flow-deletion", 11 * 60 * MINUTE_MS + 5 * MINUTE_MS, 2,
           "25 flows deleted by one user within 4 minutes"),
    Attack("admin-granted", 14 * 60 * MINUTE_MS + 20 * MINUTE_MS, 13,
           "a user given the admin scope"),
    Attack("audit-logging-changed", 16 * 60 * MINUTE_MS + 45 * MINUTE_MS, 20,
           "audit logging switched off in the system configuration"),
    Attack("cross-tenant", 19 * 60 * MINUTE_MS + 30 * MINUTE_MS, 4,
           "a user of one tenant changing flows in another tenant"),
)  # fmt: skip


class _Day(_Generator):
    """The simulator's generator, with everyday user updates that grant nothing, plus the
    near misses and attacks of the scenario days."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.bodies["user.updated"] = self._profile_updated

    def _profile_updated(self, actor: Record) -> Record:
        target, body = self._user_target()
        timezone = self.rng.choice(("Europe/Prague", "Europe/Berlin", "America/New_York"))
        before = {"name": target["name"], "timezone": "UTC"}
        return {**body, "before": before, "after": {**before, "timezone": timezone}}

    def user(self, index: int) -> Record:
        return self.world.users[index % len(self.world.users)]

    def record(self, code: str, ms: int, actor: Record, body: Record) -> Record:
        """An event as the API service writes it: plain, with the actor's tenant."""
        record: Record = {"id": self.world.hex(24), "created": _iso(ms), "action": code}
        if code == "user.login_failed":
            record["email"] = actor["email"]
        else:
            record |= {"userId": actor["id"], "email": actor["email"]}
        record["tenantId"] = actor["tenant"]
        return record | body

    def token_body(self, name: str) -> Record:
        """The body of an access token's creation (the token itself is redacted)."""
        token_id = f"tok_{self.world.hex(12)}"
        secret = self.world.token(40)
        after = {"name": name, "scopes": ["flows:read", "flows:write"], "token": secret}
        return {"entity": {"type": "token", "id": token_id, "name": name}, "after": after}

    def near_misses(self, start: int) -> Iterator[tuple[int, Record]]:
        """What an ordinary day holds that looks a little like an attack, but is not one."""
        clumsy = self.user(11)  # three mistyped passwords, then the right one
        for i in range(3):
            when = start + 9 * HOUR_MS + i * 20_000
            body = {"ip": clumsy["ip"], "reason": "invalid password"}
            yield when, self.record("user.login_failed", when, clumsy, body)
        when = start + 9 * HOUR_MS + 70_000
        yield when, self.record("user.login", when, clumsy, {"ip": clumsy["ip"]})
        careful = self.user(15)  # a password change, and a token only hours later
        when = start + 8 * HOUR_MS
        yield (
            when,
            self.record("user.password_changed", when, careful, self._password_changed(careful)),
        )
        when = start + 15 * HOUR_MS
        yield when, self.record(TOKEN_ACTION, when, careful, self.token_body("reporting"))
        builder = self.user(17)  # two kinds of token, and no password change at all
        when = start + 10 * HOUR_MS
        yield when, self.record(TOKEN_ACTION, when, builder, self.token_body("ci-deploy"))
        when += 5 * MINUTE_MS
        yield when, self.record(OTHER_TOKEN_ACTION, when, builder, self.token_body("ci-api"))
        admin = self.user(0)  # an administrator's admin scope revoked
        when = start + 12 * HOUR_MS
        yield when, self.record("user.updated", when, admin, self.revocation(admin))
        tidy = self.user(3)  # a clean-up of a few old flows
        for i in range(4):
            when = start + 13 * HOUR_MS + i * 45_000
            yield when, self.record("flow.deleted", when, tidy, self._flow_deleted(tidy))
        admin = self.user(0)  # configuration work that leaves audit logging alone
        for key, old, new in (("LOG_LEVEL", "info", "debug"), ("API_RATE_LIMIT", 5000, 30000)):
            when = start + 17 * HOUR_MS
            body = {
                "entity": {"type": "config", "id": key},
                "before": {"key": key, "value": old},
                "after": {"key": key, "value": new},
            }
            yield when, self.record("config.updated", when, admin, body)

    def revocation(self, admin: Record) -> Record:
        """The admin scope taken from a user (the next one after ``admin``)."""
        target = self.user(self.world.users.index(admin) + 1)
        return {
            "entity": {"type": "user", "id": target["id"], "name": target["email"]},
            "before": {"scope": ["user", "admin"]},
            "after": {"scope": ["user"]},
        }

    def attacks(self, start: int, *, at_once: bool = False) -> Iterator[tuple[int, Record]]:
        """The six attacks, each from its own account at its own time (``at_once``: all
        starting at ``start``)."""
        steps: dict[str, Callable[[Record, int], Iterator[tuple[int, Record]]]] = {
            "failed-logins": self._brute_force,
            "password-then-token": self._takeover,
            "mass-flow-deletion": self._mass_deletion,
            "admin-granted": self._admin_granted,
            "audit-logging-changed": self._audit_disabled,
            "cross-tenant": self._cross_tenant,
        }
        for attack in ATTACKS:
            at = start if at_once else start + attack.start_ms
            yield from steps[attack.name](self.user(attack.actor), at)

    def _brute_force(self, victim: Record, at: int) -> Iterator[tuple[int, Record]]:
        source = "203.0.113.66"
        for i in range(12):
            when = at + i * 15_000
            body = {"ip": source, "reason": "invalid password", "userAgent": "python-requests/2.32"}
            yield when, self.record("user.login_failed", when, victim, body)
        when = at + 12 * 15_000
        yield when, self.record("user.login", when, victim, {"ip": source})

    def _takeover(self, owner: Record, at: int) -> Iterator[tuple[int, Record]]:
        yield at, self.record("user.password_changed", at, owner, self._password_changed(owner))
        when = at + 4 * MINUTE_MS
        yield when, self.record(TOKEN_ACTION, when, owner, self.token_body("backup-sync"))

    def _mass_deletion(self, vandal: Record, at: int) -> Iterator[tuple[int, Record]]:
        for i in range(25):
            when = at + i * 9_000
            yield when, self.record("flow.deleted", when, vandal, self._flow_deleted(vandal))

    def _admin_granted(self, granter: Record, at: int) -> Iterator[tuple[int, Record]]:
        target = self.user(self.world.users.index(granter) + 1)
        body = {
            "entity": {"type": "user", "id": target["id"], "name": target["email"]},
            "before": {"scope": ["user"]},
            "after": {"scope": ["user", "admin"]},
        }
        yield at, self.record("user.updated", at, granter, body)

    def _audit_disabled(self, admin: Record, at: int) -> Iterator[tuple[int, Record]]:
        key = "AUDIT_LOG_ENABLED"
        body = {
            "entity": {"type": "config", "id": key},
            "before": {"key": key, "value": True},
            "after": {"key": key, "value": False},
        }
        yield at, self.record("config.updated", at, admin, body)

    def _cross_tenant(self, intruder: Record, at: int) -> Iterator[tuple[int, Record]]:
        home = intruder["tenant"]
        foreign = next(user["tenant"] for user in self.world.users if user["tenant"] != home)
        when = at - 20 * MINUTE_MS  # first at home, as every day
        yield when, self.record("flow.started", when, intruder, self._stage(intruder, "running"))
        for i, code in enumerate(("flow.updated", "flow.stopped", "flow.updated")):
            when = at + i * 30_000
            body = self.bodies[code](intruder)
            yield when, self.record(code, when, intruder, body) | {"tenantId": foreign}


def iter_day(scenario: Scenario, seed: int = 0) -> Iterator[Record]:
    """The records of one scenario day, in time order."""
    start = BENIGN_DAY_MS if scenario == "benign" else ATTACK_DAY_MS
    day = _Day(random.Random(f"{scenario}:{seed}"))  # noqa: S311 (repeatable traffic, not secret)
    timed: list[tuple[int, int, Record]] = []
    gap = DAY_MS / (EVERYDAY_EVENTS + 1)
    for i in range(EVERYDAY_EVENTS):
        when = start + int((i + day.rng.random()) * gap)
        timed.append((when, len(timed), day.event(when)))
    extra = day.near_misses(start)
    if scenario == "attack":
        extra = iter([*extra, *day.attacks(start)])
    timed.extend((when, len(timed), record) for when, record in extra)
    timed.sort(key=lambda item: (item[0], item[1]))
    for _when, _order, record in timed:
        yield record


def late_attacks(at_ms: int, seed: int = 0) -> list[Record]:
    """The six attacks of the attack day, all starting at ``at_ms``, in time order: with
    ``at_ms`` an hour ago, events that reach the index late (a backlog, a replay)."""
    day = _Day(random.Random(f"attack:{seed}"))  # noqa: S311 (the accounts of attack_user)
    return [record for _when, record in sorted(day.attacks(at_ms, at_once=True), key=_first)]


def _first(item: tuple[int, Record]) -> int:
    return item[0]


def write_day(out: BinaryIO, scenario: Scenario, seed: int = 0) -> int:
    """Write one scenario day as NDJSON; returns the number of lines."""
    written = 0
    for record in iter_day(scenario, seed):
        out.write(orjson.dumps(record) + b"\n")
        written += 1
    out.flush()
    return written


def attack_user(attack: Attack, seed: int = 0) -> Record:
    """The account an attack of the attack day is carried by (its victim for failed logins)."""
    day = _Day(random.Random(f"attack:{seed}"))  # noqa: S311
    return day.user(attack.actor)
