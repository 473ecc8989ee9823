"""Fault injection at every point of every step, for the four functions, on real databases.

Every Secrets Manager call and every database connect and statement the function makes is, in
turn, made to fail before it runs, fail after it took effect (the answer lost), or kill the
process right after it: each point once, the three kinds taking turns from point to point (and
starting from another kind in each function, so each kind meets every sort of point). The local
driver then re-drives the rotation as the service does. After every run:

1. at every moment (after each step, and right after the fault) a stored version logs in:
   AWSCURRENT, or AWSPENDING once the database has it;
2. once the rotation succeeded, AWSCURRENT logs in (the database has its password) and it is a
   new version;
3. no AWSPENDING is left on a version other than AWSCURRENT;
4. the next rotation (the next run, and one clean rotation at the end) succeeds.

Also: two invocations of the same step at once leave a consistent state.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from keyturn_local.driver import (
    RotationFailed,
    StepRecord,
    clear_pending_label,
    register_stand_in_function,
    rotate,
)
from keyturn_local.servers import MOTO_CONFIG, MariaDBServer, PostgresServer
from rotation_lambdas import DatabaseSecret, RotationEngine
from rotation_lambdas.handlers import ALTERNATING_USERS, SINGLE_USER, build_engine, make_adapter
from rotation_lambdas.secret import EngineFamily
from rotation_lambdas.settings import ENV_TLS_CA_BUNDLE, ConnectSettings
from tests.support.db_setup import setup_secret
from tests.support.faults import (
    KINDS,
    FaultPlan,
    FaultySecretsManager,
    ProcessDeath,
    inject_into_adapter,
)
from tests.support.leaks import LeakWatch
from tests.support.strict_sm import StrictSecretsManager

from .conftest import family_of

pytestmark = pytest.mark.integration
FUNCTIONS = [
    ("postgres", SINGLE_USER),
    ("postgres", ALTERNATING_USERS),
    ("mariadb", SINGLE_USER),
    ("mariadb", ALTERNATING_USERS),
]
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


@dataclass
class FaultWorld:
    family: EngineFamily
    strategy: str
    env: dict[str, str]
    raw: Any  # the boto3 client, under moto
    clean: StrictSecretsManager
    arn: str
    function_arn: str
    leaks: LeakWatch
    checks: list[str] = field(default_factory=list)

    def engine(self, client: Any) -> RotationEngine:
        return build_engine(self.family, self.strategy, client=client, env=self.env)

    def stages(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = self.clean.describe_secret(SecretId=self.arn)[
            "VersionIdsToStages"
        ]
        return out

    def secret_at(self, version_id: str) -> DatabaseSecret | None:
        try:
            text = self.clean.get_secret_value(SecretId=self.arn, VersionId=version_id)
        except self.clean.exceptions.ResourceNotFoundException:
            return None  # the pending stub before createSecret stored a value
        self.leaks.add_secret_string(text["SecretString"])
        return DatabaseSecret.parse(text["SecretString"])

    def logs_in(self, secret: DatabaseSecret) -> bool:
        adapter: Any = make_adapter(self.family, ConnectSettings.from_env(self.env))
        conn = adapter.try_connect(secret)
        if conn is None:
            return False
        adapter.close(conn)
        return True

    def no_lockout(self, moment: str) -> None:
        """Invariant 1, recorded (asserted by the caller with the moment named)."""
        for version_id, stages in self.stages().items():
            if "AWSCURRENT" in stages or "AWSPENDING" in stages:
                secret = self.secret_at(version_id)
                if secret is not None and self.logs_in(secret):
                    return
        self.checks.append(f"no stored version logs in {moment}")

    def converge(self, token: str, before: str) -> None:
        """What the service does after a failure: re-drive until done; then invariants 2-3."""
        stages = self.stages()
        pending = next((v for v, s in stages.items() if "AWSPENDING" in s), None)
        current = next(v for v, s in stages.items() if "AWSCURRENT" in s)
        if pending is not None and pending != current:
            rotate(
                self.clean.sm,
                self.arn,
                self.engine(self.clean.sm),
                resume=True,
                max_attempts=2,
                on_step=lambda r: self.no_lockout(f"after the re-driven {r.step.value}"),
            )
        elif pending == current:
            clear_pending_label(self.clean.sm, self.arn, pending)  # AWS accepts either end state
        stages = self.stages()
        current = next(v for v, s in stages.items() if "AWSCURRENT" in s)
        assert current != before, f"no new AWSCURRENT after token {token}"
        secret = self.secret_at(current)
        assert secret is not None
        assert self.logs_in(secret), "the database does not have AWSCURRENT's password"
        assert not any("AWSPENDING" in s and "AWSCURRENT" not in s for s in stages.values())

    def current_version(self) -> str:
        return next(v for v, s in self.stages().items() if "AWSCURRENT" in s)

    def faulted_rotation(self, plan: FaultPlan) -> None:
        """One rotation with ``plan``'s fault in the function, then the service converges it."""
        faulty = FaultySecretsManager(self.raw, plan)
        engine = self.engine(faulty.sm)
        inject_into_adapter(engine.strategy.adapter, plan)
        before, token = self.current_version(), str(uuid.uuid4())

        def after_step(record: StepRecord) -> None:
            self.no_lockout(f"after {record.step.value} ({plan.fired or 'no fault yet'})")

        try:
            rotate(self.clean.sm, self.arn, engine, token=token, max_attempts=1, on_step=after_step)
        except (RotationFailed, ProcessDeath):
            self.no_lockout(f"right after the fault {plan.fired}")
        self.converge(token, before)


@pytest.fixture
def world_for(
    postgres_server: PostgresServer, mariadb_server: MariaDBServer, leak_watch: LeakWatch
) -> Any:
    def make(engine_name: str, strategy: str, name: str) -> FaultWorld:
        raw = boto3.client("secretsmanager")
        clean = StrictSecretsManager(raw)
        server = postgres_server if engine_name == "postgres" else mariadb_server
        arn, _ = setup_secret(server, strategy == ALTERNATING_USERS, clean, leak_watch, name=name)
        server = postgres_server if engine_name == "postgres" else mariadb_server
        assert server.tls_files is not None
        env = {ENV_TLS_CA_BUNDLE: str(server.tls_files.ca_cert)}
        function_arn = register_stand_in_function(boto3.client("lambda"), boto3.client("iam"))
        world = FaultWorld(
            family_of(engine_name), strategy, env, raw, clean, arn, function_arn, leak_watch
        )
        rotate(clean.sm, arn, world.engine(clean.sm), lambda_arn=function_arn)  # as deployed
        return world

    with mock_aws(config=MOTO_CONFIG):
        yield make


@pytest.mark.parametrize(("engine_name", "strategy"), FUNCTIONS)
def test_every_fault_point_converges(
    world_for: Any, engine_name: str, strategy: str, figures: Callable[[str, str], None]
) -> None:
    world: FaultWorld = world_for(engine_name, strategy, "flt")
    counting = FaultPlan()
    world.faulted_rotation(counting)
    points = len(counting.seen)
    assert points >= 10, counting.seen
    offset = [(e, str(s)) for e, s in FUNCTIONS].index((engine_name, strategy))
    fired = dict.fromkeys(KINDS, 0)
    for target in range(points):
        plan = FaultPlan(target, KINDS[(target + offset) % len(KINDS)])
        world.faulted_rotation(plan)
        fired[plan.kind] += plan.fired is not None
    assert world.checks == []
    # Alternating rotations differ slightly in length (creating the clone the first time): a
    # target past a shorter rotation's end is a clean rotation, still checked.
    assert sum(fired.values()) >= points - 3, f"only {fired} of {points} faults fired"
    world.faulted_rotation(FaultPlan())  # invariant 4 once more, with no fault
    assert world.checks == []
    figures(
        "faults",
        f"{engine_name} {strategy}: {sum(fired.values())} faults injected at {points} points "
        f"({sum(p.startswith('db:') for p in counting.seen)} database, "
        f"{sum(p.startswith('SecretsManager') for p in counting.seen)} Secrets Manager; "
        + ", ".join(f"{n} {kind}" for kind, n in fired.items())
        + "); every invariant held",
    )


def invoke(
    engine: RotationEngine, event: dict[str, str], barrier: threading.Barrier, outcomes: list[str]
) -> None:
    """One of two simultaneous invocations of a step (a slow one, and the service's retry)."""
    barrier.wait(10)
    try:
        engine(event, None)
    except Exception as exc:  # noqa: BLE001 - recorded: one may lose the race
        outcomes.append(f"{event['Step']}: {type(exc).__name__}")
    else:
        outcomes.append(f"{event['Step']}: ok")


@pytest.mark.parametrize(("engine_name", "strategy"), FUNCTIONS)
def test_the_same_step_twice_at_once_stays_consistent(
    world_for: Any, engine_name: str, strategy: str, figures: Callable[[str, str], None]
) -> None:
    world: FaultWorld = world_for(engine_name, strategy, "flt_conc")
    for _ in range(2):  # both users of an alternating pair
        before, token = world.current_version(), str(uuid.uuid4())
        world.clean.rotate_secret(
            SecretId=world.arn,
            ClientRequestToken=token,
            RotationLambdaARN=world.function_arn,
            RotationRules={"AutomaticallyAfterDays": 30},
        )
        outcomes: list[str] = []
        for step in STEPS:
            engines = [world.engine(world.clean.sm) for _ in range(2)]  # two Lambda instances
            barrier = threading.Barrier(2)
            event = {"Step": step, "SecretId": world.arn, "ClientRequestToken": token}

            threads = [
                threading.Thread(target=invoke, args=(e, event, barrier, outcomes)) for e in engines
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            world.no_lockout(f"after two concurrent {step}")
        assert world.checks == [], outcomes
        world.converge(token, before)
        figures("faults", f"{engine_name} {strategy} concurrent steps: {', '.join(outcomes)}")
    world.faulted_rotation(FaultPlan())
    assert world.checks == []
