"""The rotation engine: Secrets Manager's four-step protocol, in one place, for every database.

Each step re-reads the secret's state and converges: re-running any step, or the whole rotation,
after a crash at any point reaches the same end state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from .errors import ConfigurationError, RotationError, StageError
from .event import RotationEvent, Step
from .log import get_logger
from .metrics import StepMetrics
from .secret import DatabaseSecret
from .secrets_store import SecretsStore
from .settings import PasswordPolicy
from .stages import AWSCURRENT, AWSPENDING, PASSWORD_SET, Decision, SecretMetadata, check_token
from .strategies.base import StepContext, Strategy

if TYPE_CHECKING:
    from .rds import RdsLocator


class RotationEngine:
    """Runs one rotation step for an event; callable as a Lambda handler.

    Usage (``strategy`` wraps a database adapter, ``client`` is a boto3 Secrets Manager client)::

        engine = RotationEngine(SingleUserStrategy(PostgresAdapter()), SecretsStore(client))
        engine({"Step": "createSecret", "SecretId": arn, "ClientRequestToken": token}, context)
    """

    def __init__(
        self,
        strategy: Strategy[Any],
        store: SecretsStore,
        *,
        policy: PasswordPolicy | None = None,
        logger: Logger | None = None,
        metrics: StepMetrics | None = None,
        rds: RdsLocator | None = None,
    ) -> None:
        self.strategy = strategy
        self.store = store
        self.rds = rds  # locates RDS-managed superuser secrets; None: they are refused
        self.policy = policy if policy is not None else PasswordPolicy.from_env()
        self.logger = logger if logger is not None else get_logger()
        self.metrics = metrics if metrics is not None else StepMetrics()
        self._steps: Mapping[Step, Callable[[RotationEvent, SecretMetadata], None]] = {
            Step.CREATE: self.create_secret,
            Step.SET: self.set_secret,
            Step.TEST: self.test_secret,
            Step.FINISH: self.finish_secret,
        }

    def __call__(self, event: object, context: object = None) -> None:
        """The Lambda handler signature: ``engine(event, context)``."""
        self.run(event)

    def run(self, raw_event: object) -> None:
        """Validate the event, apply the stage guard and run its step."""
        started = time.monotonic()
        try:
            event = RotationEvent.parse(raw_event)
        except RotationError as exc:
            self.logger.error("invalid rotation event", extra=_error_fields(exc))
            raise
        self.logger.append_keys(
            step=event.step.value,
            secret_id=event.secret_id,
            token=event.token,
            **self.strategy.describe(),
        )
        try:
            metadata = self.store.describe(event.secret_id)
            self.logger.append_keys(secret_arn=metadata.arn)
            if check_token(metadata, event.token) is Decision.ALREADY_CURRENT:
                self.logger.info("the version is already AWSCURRENT; nothing to do")
                return
            self._steps[event.step](event, metadata)
            self.logger.info("step succeeded", extra={"duration_ms": _ms_since(started)})
            self._record(event, started, None)
        except RotationError as exc:
            exc.step = event.step.value
            self.logger.error(
                "step failed", extra={**_error_fields(exc), "duration_ms": _ms_since(started)}
            )
            self._record(event, started, exc.category)
            raise
        except Exception as exc:
            # Not ours: log only the type; a foreign message could quote anything.
            self.logger.error(
                "step failed unexpectedly",
                extra={"error_type": type(exc).__name__, "duration_ms": _ms_since(started)},
            )
            self._record(event, started, "unexpected")
            raise
        finally:
            self.logger.remove_keys(
                ["step", "secret_id", "secret_arn", "token", "strategy", "engine_family"]
            )

    def _record(self, event: RotationEvent, started: float, error_category: str | None) -> None:
        described = self.strategy.describe()
        self.metrics.record(
            {
                "Engine": str(described["engine_family"]),
                "Strategy": str(described["strategy"]),
                "Step": event.step.value,
            },
            succeeded=error_category is None,
            duration_ms=_ms_since(started),
            error_category=error_category,
        )

    # --- the four steps -------------------------------------------------------------------------

    def create_secret(self, event: RotationEvent, metadata: SecretMetadata) -> None:
        """Store a new AWSPENDING value for the token, unless one is already there."""
        current = self._require(event.secret_id, AWSCURRENT)
        for version_id, stages in metadata.versions.items():
            if PASSWORD_SET in stages and version_id != event.token:
                # Left by a rotation whose finishSecret stopped before taking it off.
                self.store.label(event.secret_id, PASSWORD_SET, version_id, on=False)
        existing = self.store.get_value(event.secret_id, stage=AWSPENDING, version_id=event.token)
        if existing is not None:
            self._validated(existing, AWSPENDING)
            self.logger.info("an AWSPENDING value already exists for the token; nothing to create")
            return
        password = self.store.random_password(self.policy)
        pending = self.strategy.pending_secret(current, password)
        self.store.put_pending(
            event.secret_id, event.token, pending.to_json(), event.rotation_token
        )
        self.logger.info("created the AWSPENDING value", extra={"username": pending.username})

    def set_secret(self, event: RotationEvent, metadata: SecretMetadata) -> None:
        """Make the database accept the pending credentials."""
        current = self._require(event.secret_id, AWSCURRENT)
        pending = self._pending(event)
        self.strategy.check_pair(current, pending)
        self.strategy.set_secret(self._context(event, metadata), current, pending)

    def test_secret(self, event: RotationEvent, metadata: SecretMetadata) -> None:
        """Log in with the pending credentials and probe."""
        pending = self._pending(event)
        self.strategy.test_secret(self._context(event, metadata), pending)

    def finish_secret(self, event: RotationEvent, metadata: SecretMetadata) -> None:
        """Move AWSCURRENT to the token's version (the guard already returned if it is there)."""
        from_version = metadata.version_with(AWSCURRENT)
        self.store.make_current(event.secret_id, event.token, from_version)
        self.logger.info(
            "AWSCURRENT moved to the new version", extra={"from_version": from_version}
        )
        if PASSWORD_SET in metadata.versions.get(event.token, ()):
            self.store.label(event.secret_id, PASSWORD_SET, event.token, on=False)

    # --- helpers --------------------------------------------------------------------------------

    def _context(self, event: RotationEvent, metadata: SecretMetadata) -> StepContext:
        def load_stage(stage: str) -> DatabaseSecret | None:
            text = self.store.get_value(event.secret_id, stage=stage)
            return None if text is None else self._validated(text, stage)

        def load_secret(secret_id: str, label: str) -> DatabaseSecret:
            from .rds import read_secret  # alternating users' superuser only: not at cold start

            secret = self._in_family(read_secret(self.store, secret_id, label, self.rds), label)
            if "host" not in secret.raw:
                self.logger.info(
                    f"the {label} is managed by RDS: its endpoint came from the RDS API",
                    extra={"endpoint": secret.endpoint},
                )
            return secret

        labels = set(metadata.versions.get(event.token, ()))

        def set_label(label: str, on: bool) -> None:
            if (label in labels) != on:
                self.store.label(event.secret_id, label, event.token, on=on)
                labels.add(label) if on else labels.discard(label)

        return StepContext(
            logger=self.logger,
            load_stage=load_stage,
            load_secret=load_secret,
            secret_arn=metadata.arn or event.secret_id,
            labels=frozenset(labels),
            set_label=set_label,
        )

    def _require(self, secret_id: str, stage: str) -> DatabaseSecret:
        text = self.store.get_value(secret_id, stage=stage)
        if text is None:
            raise StageError(f"the secret has no {stage} value")
        return self._validated(text, stage)

    def _pending(self, event: RotationEvent) -> DatabaseSecret:
        text = self.store.get_value(event.secret_id, stage=AWSPENDING, version_id=event.token)
        if text is None:
            raise StageError(
                "the token's version has no AWSPENDING value",
                hint="createSecret has not run for this token; re-drive the rotation",
            )
        return self._validated(text, AWSPENDING)

    def _validated(self, text: str, label: str) -> DatabaseSecret:
        return self._in_family(DatabaseSecret.parse(text, label=label), label)

    def _in_family(self, secret: DatabaseSecret, label: str) -> DatabaseSecret:
        family = self.strategy.adapter.family
        if secret.family is not family:
            raise ConfigurationError(
                f"{label}: engine '{secret.engine}' is not handled by this {family.value} function",
                hint="configure the secret's rotation with the function for its engine",
            )
        return secret


def _error_fields(exc: RotationError) -> dict[str, Any]:
    return {"error_category": exc.category, "error": str(exc), "hint": exc.hint}


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
