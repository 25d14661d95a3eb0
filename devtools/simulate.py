"""Realistic Appmixer audit traffic, for demos, tests and benchmarks.

Covers all 28 catalog events with plausible weights (flows change and users log in far more
often than configuration changes), a small world of tenants, users, flows, templates and
connectors whose states evolve consistently, secrets in states and data (so redaction has
work to do), services' own precomputed diffs, pino envelopes and the input aliases that
different Appmixer services use. Everything comes from one ``random.Random(seed)``: the same
seed and arguments give byte-identical output.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import orjson

from agent.normalize.catalog import CATALOG

DEFAULT_START_MS = 1_795_593_600_000  # 2026-11-25T08:00:00Z: fixed, so output is repeatable
DEFAULT_GAP_MS = 1500.0

NAMES = {entry.code: entry.message for entry in CATALOG}


def weights() -> dict[str, float]:
    """Each simulated event's relative frequency, from the generator's one table."""
    generator = _Generator(random.Random(0))  # noqa: S311 (only the table is read)
    return dict(zip(generator.codes, generator.weights, strict=True))


_TENANTS = ["acme", "globex", "initech", "umbrella"]
_PEOPLE = ["Maria Novak", "Jan Horak", "Aisha Khan", "Tom Becker", "Li Wei", "Sofia Rossi"]
_CONNECTORS = [
    ("appmixer.slack", "Slack"), ("appmixer.google.gmail", "Gmail"),
    ("appmixer.salesforce", "Salesforce"), ("appmixer.hubspot", "HubSpot"),
    ("appmixer.microsoft.teams", "Microsoft Teams"), ("appmixer.jira", "Jira"),
    ("appmixer.pipedrive", "Pipedrive"), ("appmixer.twilio", "Twilio"),
]  # fmt: skip
_COMPONENTS = [
    "appmixer.utils.timers.Timer", "appmixer.utils.controls.Condition",
    "appmixer.utils.http.Request", "appmixer.slack.list.SendChannelMessage",
    "appmixer.google.gmail.NewEmail", "appmixer.salesforce.crm.CreateLead",
    "appmixer.hubspot.crm.CreateContact", "appmixer.jira.issues.CreateIssue",
]  # fmt: skip
_FLOW_NAMES = [
    "Sync leads", "New deal alert", "Invoice digest", "Ticket triage", "Weekly report",
    "Onboarding emails", "Churn watch", "Lead scoring",
]  # fmt: skip
_CONFIG_KEYS = [
    "AUTH_HUB_TIMEOUT", "API_RATE_LIMIT", "SMTP_PASSWORD", "SLACK_BOT_TOKEN", "LOG_LEVEL",
    "WEBHOOK_SECRET", "MAX_FLOW_RUNNING_TIME",
]  # fmt: skip
_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 Version/18.1 Safari",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "appmixer-cli/6.1.0 node/20.18.0", "axios/1.7.9",
]  # fmt: skip
_NOISE = [
    "GET /flows 200 12ms", "POST /flows/{id}/start 200 48ms", "GET /user 200 3ms",
    "worker heartbeat", "component message processed", "GET /apps 304 5ms",
]  # fmt: skip
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_PINO = {"level": 30, "time": 0, "pid": 41, "hostname": "appmixer-api-7f9c"}
Record = dict[str, Any]


class _World:
    """The simulated installation: who works there, which flows exist, in what state."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.users = [self._person(name, tenant) for tenant in _TENANTS for name in _PEOPLE]
        self.flows: dict[str, Record] = {}
        self.flow_ids: list[str] = []  # a list beside the dict: random picks in O(1)
        self.templates: dict[str, Record] = {}
        self.template_ids: list[str] = []
        self.tests: list[str] = []
        for _ in range(12):
            self.new_flow(rng.choice(self.users))
        for _ in range(4):
            self.new_template()

    def hex(self, length: int) -> str:
        return f"{self.rng.getrandbits(length * 4):0{length}x}"

    def token(self, length: int) -> str:
        return "".join(self.rng.choice(_B64) for _ in range(length))

    def _person(self, name: str, tenant: str) -> Record:
        first, last = name.lower().split(" ", 1)
        email = f"{first}.{last}@{tenant}.example"
        return {"id": self.hex(24), "email": email, "name": name, "tenant": tenant, "ip": self.ip()}

    def ip(self) -> str:
        if self.rng.random() < 0.1:
            return f"2001:db8:{self.rng.randrange(1 << 16):x}::{self.rng.randrange(1, 999)}"
        prefix = self.rng.choice(("198.51.100", "203.0.113", "192.0.2", "10.20.30"))
        return f"{prefix}.{self.rng.randrange(1, 255)}"

    def component(self) -> Record:
        kind = self.rng.choice(_COMPONENTS)
        config: Record = {}
        if kind.endswith("Timer"):
            config = {"interval": self.rng.choice((1, 5, 15, 60))}
        elif kind.endswith("Request"):  # a credential in a flow: redaction must catch it
            headers = {"Authorization": f"Bearer {self.token(32)}"}
            config = {"url": "https://api.example.com/v1/items", "headers": headers}
        elif kind.endswith("Condition"):
            config = {"expression": {"AND": [{"field": "amount", "gt": self.rng.randrange(999)}]}}
        return {"type": kind, "config": config}

    def new_flow(self, owner: Record) -> tuple[str, Record]:
        flow_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        components = {self.hex(4): self.component() for _ in range(self.rng.randint(1, 4))}
        name = self.rng.choice(_FLOW_NAMES)
        state = {"name": name, "stage": "stopped", "owner": owner["id"], "flow": components}
        self.flows[flow_id] = state
        self.flow_ids.append(flow_id)
        return flow_id, state

    def new_template(self) -> tuple[str, Record]:
        template_id = f"tpl_{self.hex(8)}"
        connectors = [code for code, _name in self.rng.sample(_CONNECTORS, 2)]
        name = f"{self.rng.choice(_FLOW_NAMES)} template"
        state = {"name": name, "published": False, "version": 1, "connectors": connectors}
        self.templates[template_id] = state
        self.template_ids.append(template_id)
        return template_id, state

    def pick(self, ids: list[str]) -> str:
        return ids[self.rng.randrange(len(ids))]

    def drop(self, ids: list[str], table: dict[str, Record], ident: str) -> None:
        index = ids.index(ident)
        ids[index] = ids[-1]
        ids.pop()
        del table[ident]


def _copy(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


def _entity(kind: str, ident: str, name: str | None = None) -> Record:
    entity = {"type": kind, "id": ident}
    if name is not None:
        entity["name"] = name
    return {"entity": entity}


class _Generator:
    """One event per call, spelled like one of the Appmixer services that write them."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.world = _World(rng)
        # The catalog once: per event, how often it happens (flows change and people log in
        # all day long) and how its body is made.
        table: dict[str, tuple[float, Callable[[Record], Record]]] = {
            "config.updated": (1.0, lambda _: self._config(updated=True)),
            "config.deleted": (0.3, lambda _: self._config(updated=False)),
            "acl.rule.created": (0.3, self._acl_rule_created),
            "acl.rule.updated": (0.6, self._acl_rule_updated),
            "component.access.assigned": (0.8, self._access_assigned),
            "flow.created": (5.0, self._flow_created),
            "flow.updated": (22.0, self._flow_updated),
            "flow.started": (10.0, lambda actor: self._stage(actor, "running")),
            "flow.stopped": (8.0, lambda actor: self._stage(actor, "stopped")),
            "flow.deleted": (2.0, self._flow_deleted),
            "flow.cloned": (2.0, self._flow_cloned),
            "template.created": (1.0, self._template_created),
            "template.updated": (2.0, lambda _: self._template_change(None)),
            "template.published": (0.8, lambda _: self._template_change(True)),
            "template.published_updated": (0.6, lambda _: self._template_change(True)),
            "template.deleted": (0.3, self._template_deleted),
            "template.test.started": (1.5, self._test_started),
            "template.test.stopped": (1.2, lambda _: self._test_end(drop=False)),
            "template.test.deleted": (0.5, lambda _: self._test_end(drop=True)),
            "connector.installed": (0.8, lambda _: self._connector(before=False, after=True)),
            "connector.updated": (0.8, lambda _: self._connector(before=True, after=True)),
            "connector.uninstalled": (0.3, lambda _: self._connector(before=True, after=False)),
            "user.created": (0.8, self._user_created),
            "user.updated": (1.0, self._user_updated),
            "user.deleted": (0.3, self._user_deleted),
            "user.login": (18.0, self._login),
            "user.login_failed": (3.0, self._login_failed),
            "user.password_changed": (0.5, self._password_changed),
        }
        self.codes = list(table)
        self.weights = [weight for weight, _body in table.values()]
        self.bodies = {code: body for code, (_weight, body) in table.items()}

    def event(self, ms: int) -> Record:
        code = self.rng.choices(self.codes, self.weights)[0]
        actor = self.rng.choice(self.world.users)
        return self._shape(code, ms, actor, self.bodies[code](actor))

    def noise(self, ms: int) -> Record:
        return {**_PINO, "time": ms, "msg": self.rng.choice(_NOISE)}

    # --- flows
    def _pick_flow(self, actor: Record, stage: str | None = None) -> tuple[str, Record]:
        """A flow, preferably one not already in ``stage`` (nobody starts a running flow)."""
        world = self.world
        if not world.flow_ids:
            return world.new_flow(actor)
        for _ in range(4):
            flow_id = world.pick(world.flow_ids)
            if world.flows[flow_id]["stage"] != stage:
                break
        return flow_id, world.flows[flow_id]

    def _flow_created(self, actor: Record) -> Record:
        flow_id, state = self.world.new_flow(actor)
        return {"flowId": flow_id, "after": _copy(state)}

    def _flow_updated(self, actor: Record) -> Record:
        flow_id, state = self._pick_flow(actor)
        before = _copy(state)
        components = state["flow"]
        roll = self.rng.random()
        if roll < 0.4 or not components:
            components[self.world.hex(4)] = self.world.component()
            if len(components) > 6:
                del components[next(iter(components))]
        elif roll < 0.7:
            state["name"] = f"{self.rng.choice(_FLOW_NAMES)} v{self.rng.randint(2, 9)}"
        else:
            component = components[self.rng.choice(list(components))]
            component["config"]["retries"] = self.rng.randint(0, 5)
        return {"flowId": flow_id, "before": before, "after": _copy(state)}

    def _stage(self, actor: Record, stage: str) -> Record:
        flow_id, state = self._pick_flow(actor, stage)
        before = {"stage": state["stage"]}
        state["stage"] = stage
        return {"flowId": flow_id, "before": before, "after": {"stage": stage}}

    def _flow_deleted(self, actor: Record) -> Record:
        flow_id, state = self._pick_flow(actor)
        self.world.drop(self.world.flow_ids, self.world.flows, flow_id)
        return {"flowId": flow_id, "before": state}

    def _flow_cloned(self, actor: Record) -> Record:
        source_id, _ = self._pick_flow(actor)
        flow_id, state = self.world.new_flow(actor)
        return {"flowId": flow_id, "after": _copy(state), "data": {"sourceFlowId": source_id}}

    # --- templates and their tests
    def _pick_template(self) -> tuple[str, Record]:
        if not self.world.template_ids:
            return self.world.new_template()
        template_id = self.world.pick(self.world.template_ids)
        return template_id, self.world.templates[template_id]

    def _template_created(self, actor: Record) -> Record:
        template_id, state = self.world.new_template()
        return {**_entity("template", template_id, state["name"]), "after": _copy(state)}

    def _template_change(self, published: bool | None) -> Record:
        template_id, state = self._pick_template()
        before = _copy(state)
        if published is not None:
            state["published"] = published
        state["version"] += 1
        body = _entity("template", template_id, state["name"])
        if self.rng.random() < 0.3:  # the template service sends its own diff
            body["diff"] = [{"path": "/version", "old": before["version"], "new": state["version"]}]
            return body
        return {**body, "before": before, "after": _copy(state)}

    def _template_deleted(self, actor: Record) -> Record:
        template_id, state = self._pick_template()
        self.world.drop(self.world.template_ids, self.world.templates, template_id)
        return {**_entity("template", template_id, state["name"]), "before": state}

    def _test_started(self, actor: Record) -> Record:
        template_id, _ = self._pick_template()
        test_id = f"test_{self.world.hex(10)}"
        self.world.tests.append(test_id)
        headers = {"authorization": f"Bearer {self.world.token(40)}", "x-request-id": test_id}
        data = {"templateId": template_id, "headers": headers}
        return {**_entity("template-test", test_id), "data": data}

    def _test_end(self, *, drop: bool) -> Record:
        tests = self.world.tests
        test_id = tests[-1] if tests else f"test_{self.world.hex(10)}"
        if drop:
            del tests[-1:]
            return _entity("template-test", test_id)
        states = {"before": {"status": "running"}, "after": {"status": "stopped"}}
        return {**_entity("template-test", test_id), **states}

    # --- connectors, configuration, access control
    def _connector(self, *, before: bool, after: bool) -> Record:
        connector, name = self.rng.choice(_CONNECTORS)
        body = _entity("connector", connector, name)
        version = f"{self.rng.randint(1, 5)}.{self.rng.randint(0, 9)}.{self.rng.randint(0, 9)}"
        if self.rng.random() < 0.5:
            auth = {"clientId": self.world.hex(12), "clientSecret": self.world.token(32)}
        else:
            auth = {"apiKey": f"sk_live_{self.world.token(24)}"}
        if before:
            body["before"] = {"version": "1.0.0", "auth": {"clientId": "legacy"}}
        if after:
            body["after"] = {"version": version, "auth": auth}
        return body

    def _config_value(self, key: str) -> Any:
        if key.endswith("PASSWORD"):
            return f"pw-{self.world.token(12)}"
        if key.endswith("TOKEN"):
            return f"xoxb-{self.rng.randrange(10**11)}-{self.world.token(24)}"
        if key.endswith("SECRET"):
            return self.world.token(32)
        return self.rng.choice((5000, 30000, 60000, "debug", "info"))

    def _config(self, *, updated: bool) -> Record:
        key = self.rng.choice(_CONFIG_KEYS)
        body = {**_entity("config", key), "before": {"key": key, "value": self._config_value(key)}}
        if updated:
            body["after"] = {"key": key, "value": self._config_value(key)}
        return body

    def _acl_rule_created(self, actor: Record) -> Record:
        rule = {"role": "user", "resource": self.rng.choice(_COMPONENTS), "action": ["use"]}
        return {**_entity("acl", "components"), "after": {"rule": rule}}

    def _acl_rule_updated(self, actor: Record) -> Record:
        rule = f"/rules/{self.rng.randint(0, 9)}"
        diff = [
            {"path": f"{rule}/role", "old": "user", "new": "admin"},
            {"path": f"{rule}/resource", "old": "appmixer.slack.*", "new": "*"},
        ]
        return {**_entity("acl", "components"), "diff": diff}

    def _access_assigned(self, actor: Record) -> Record:
        email = self.rng.choice(self.world.users)["email"]
        patch = [{"op": "add", "path": "/sharedWith/-", "value": {"email": email}}]  # RFC 6902
        return {**_entity("component", self.rng.choice(_COMPONENTS)), "diff": patch}

    # --- users
    def _user_target(self) -> tuple[Record, Record]:
        target = self.rng.choice(self.world.users)
        return target, _entity("user", target["id"], target["email"])

    def _user_created(self, actor: Record) -> Record:
        target, body = self._user_target()
        password = f"$2b$10${self.world.token(53)}"
        after = {"email": target["email"], "name": target["name"], "password": password}
        return {**body, "after": {**after, "scope": ["user"]}}

    def _user_updated(self, actor: Record) -> Record:
        _, body = self._user_target()
        return {**body, "before": {"scope": ["user"]}, "after": {"scope": ["user", "admin"]}}

    def _user_deleted(self, actor: Record) -> Record:
        target, body = self._user_target()
        return {**body, "before": {"email": target["email"], "name": target["name"]}}

    def _login(self, actor: Record) -> Record:
        return {"ip": actor["ip"], "userAgent": self.rng.choice(_AGENTS)}

    def _login_failed(self, actor: Record) -> Record:
        reason = self.rng.choice(("invalid password", "unknown user", "account locked"))
        return {"ip": self.world.ip(), "reason": reason, "userAgent": self.rng.choice(_AGENTS)}

    def _password_changed(self, actor: Record) -> Record:
        old, new = (f"$2b$10${self.world.token(53)}" for _ in range(2))
        entity = {"type": "user", "id": actor["id"]}
        return {"entity": entity, "before": {"password": old}, "after": {"password": new}}

    # --- how the record is spelled
    def _who(self, code: str, actor: Record) -> Record:
        """The acting user, in one of the spellings services use (a failed login has no id)."""
        who = self.rng.random()
        if code == "user.login_failed":
            return {"email": actor["email"]}
        if who < 0.55:
            return {"userId": actor["id"], "email": actor["email"]}
        if who < 0.8:
            return {"user": {"id": actor["id"], "email": actor["email"], "name": actor["name"]}}
        if who < 0.9:
            return {"actor": {"id": actor["id"], "email": actor["email"]}}
        return {"userEmail": actor["email"]}

    def _shape(self, code: str, ms: int, actor: Record, body: Record) -> Record:
        rng = self.rng
        record: Record = {}
        if rng.random() < 0.75:
            record[rng.choice(("id", "id", "id", "_id", "eventId", "auditId"))] = self.world.hex(24)
        when = rng.random()
        if when < 0.6:
            record["created"] = _iso(ms)
        elif when < 0.85:
            record["createdAt"] = ms
        else:
            record["timestamp"] = _iso(ms, offset_hours=1)
        name = NAMES[code] if rng.random() < 0.8 else code
        record[rng.choice(("action", "action", "action", "event", "eventName"))] = name
        record.update(self._who(code, actor))
        if rng.random() < 0.5:
            record["tenantId"] = actor["tenant"]
        if "flowId" in body and rng.random() < 0.2:
            body["flow"] = {"id": body.pop("flowId")}
        record.update(body)
        if rng.random() < 0.1:  # the API service logs through pino, inside an envelope
            for key in ("created", "createdAt", "timestamp"):
                record.pop(key, None)
            return {**_PINO, "time": ms, "msg": "audit", "audit": record}
        return record


def _iso(ms: int, offset_hours: int = 0) -> str:
    seconds, millis = divmod(ms + offset_hours * 3_600_000, 1000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    zone = "Z" if offset_hours == 0 else f"{offset_hours:+03d}:00"
    return f"{text}.{millis:03d}{zone}"


def iter_events(
    n: int,
    seed: int = 0,
    *,
    start_ms: int = DEFAULT_START_MS,
    noise: float = 0.0,
    mean_gap_ms: float = DEFAULT_GAP_MS,
) -> Iterator[Record]:
    """``n`` audit records in time order, each preceded by a service log line with
    probability ``noise``."""
    for _ms, record in _timed_events(n, seed, start_ms, noise, mean_gap_ms):
        yield record


def start_for_end(
    end_ms: int,
    n: int,
    seed: int = 0,
    *,
    noise: float = 0.0,
    mean_gap_ms: float = DEFAULT_GAP_MS,
) -> int:
    """The start time at which the same ``n`` events end exactly at ``end_ms``.

    The gaps come from the same random stream as the events' content, so the span is only
    known by generating them once.
    """
    last = 0
    for ms, _record in _timed_events(n, seed, 0, noise, mean_gap_ms):
        last = ms
    return end_ms - last


def _timed_events(
    n: int, seed: int, start_ms: int, noise: float, mean_gap_ms: float
) -> Iterator[tuple[int, Record]]:
    rng = random.Random(seed)  # noqa: S311 (simulated traffic: repeatable, not secret)
    generator = _Generator(rng)
    ms = start_ms
    for _ in range(n):
        ms += 1 + int(rng.expovariate(1.0 / mean_gap_ms))
        if noise and rng.random() < noise:
            yield ms, generator.noise(ms)
        yield ms, generator.event(ms)


def write_events(
    out: BinaryIO,
    n: int,
    seed: int = 0,
    *,
    rate: float | None = None,
    noise: float = 0.0,
    start_ms: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Write NDJSON; with ``rate`` (lines per second) pace the lines and flush each one, so
    a tailer sees a live stream. Event times then start now and follow the pace. Returns
    the number of lines written."""
    if start_ms is None:
        start_ms = DEFAULT_START_MS if rate is None else int(time.time() * 1000)
    gap = DEFAULT_GAP_MS if rate is None else 1000.0 / rate
    began = clock()
    written = 0
    for record in iter_events(n, seed, start_ms=start_ms, noise=noise, mean_gap_ms=gap):
        if rate is not None:
            delay = began + written / rate - clock()
            if delay > 0:
                sleep(delay)
        out.write(orjson.dumps(record) + b"\n")
        written += 1
        if rate is not None:
            out.flush()
    out.flush()
    return written
