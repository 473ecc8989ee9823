"""MySQL-family account options from ``SHOW CREATE USER``: what a clone mirrors besides grants.

The TLS requirement (``REQUIRE``), resource limits (``WITH MAX_...``), the password expiry
policy, the account lock, and MySQL 8's password options (``FAILED_LOGIN_ATTEMPTS``,
``PASSWORD_LOCK_TIME``, ``PASSWORD HISTORY``, ``PASSWORD REUSE INTERVAL``, ``PASSWORD REQUIRE
CURRENT``). The authentication part is skipped (each user has its own password) and is never
quoted in an error: it holds a password hash. An option this module does not know fails closed.

Values are validated (numbers, keywords) and re-issued in our own formatting; REQUIRE strings
travel as bound parameters.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..errors import ConfigurationError
from .mysql_grants import Token, TokenCursor, tokenize
from .mysql_statements import native_password_hash

LIMITS = (
    "MAX_QUERIES_PER_HOUR",
    "MAX_UPDATES_PER_HOUR",
    "MAX_CONNECTIONS_PER_HOUR",
    "MAX_USER_CONNECTIONS",
    "MAX_STATEMENT_TIME",  # MariaDB, in seconds (a decimal)
)
# MySQL 8's password options and the value each has when SHOW CREATE USER does not print it.
PASSWORD_OPTION_DEFAULTS = {
    "FAILED_LOGIN_ATTEMPTS": "0",
    "PASSWORD_LOCK_TIME": "0",
    "PASSWORD HISTORY": "DEFAULT",
    "PASSWORD REUSE INTERVAL": "DEFAULT",
    "PASSWORD REQUIRE CURRENT": "DEFAULT",
}
_NUMBER = re.compile(r"\d{1,18}(\.\d{1,12})?")
NATIVE_PASSWORD = "mysql_native_password"  # noqa: S105 - a plugin name
# Plugins that check a password the server stores, and plugins that only ever accept a local
# socket (never the TCP logins the functions make).
PASSWORD_PLUGINS = frozenset(
    {NATIVE_PASSWORD, "caching_sha2_password", "sha256_password", "ed25519", "parsec"}
)
SOCKET_PLUGINS = frozenset({"unix_socket", "auth_socket", "named_pipe"})


@dataclass(frozen=True, slots=True)
class TlsRequirement:
    """A ``REQUIRE`` clause: NONE, SSL, X509, or ISSUER / SUBJECT / CIPHER strings."""

    kind: str = "NONE"
    issuer: str | None = None
    subject: str | None = None
    cipher: str | None = None

    def clause(self) -> tuple[str, tuple[str, ...]]:
        """``REQUIRE ...`` SQL text and its parameters."""
        if self.kind in ("NONE", "SSL", "X509"):
            return f"REQUIRE {self.kind}", ()
        parts: list[str] = []
        params: list[str] = []
        for word, value in (
            ("ISSUER", self.issuer),
            ("SUBJECT", self.subject),
            ("CIPHER", self.cipher),
        ):
            if value is not None:
                parts.append(f"{word} %s")
                params.append(value)
        return "REQUIRE " + " AND ".join(parts), tuple(params)


@dataclass(frozen=True, slots=True)
class AccountOptions:
    """What ``SHOW CREATE USER`` says about an account besides its password."""

    require: TlsRequirement = TlsRequirement()
    limits: tuple[tuple[str, str], ...] = ()  # non-zero resource limits, sorted by name
    expiry_policy: str = "DEFAULT"  # DEFAULT, NEVER or INTERVAL <n> DAY
    locked: bool = False
    password_options: tuple[tuple[str, str], ...] = ()  # MySQL 8; non-default values, sorted
    credential: str = field(default="", compare=False, repr=False)
    """A digest of the authentication clause (plugin and hash): equal for two accounts that take
    the same password (unsalted hashes), never the hash itself. Not an option to mirror."""
    authentication: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)
    """(plugin, stored string) of each way to log in (MariaDB's ``VIA a OR b``); not mirrored."""
    factors: int = field(default=1, compare=False)
    """MySQL 8's multi-factor authentication: how many of the methods a login needs."""

    @property
    def password_checked(self) -> bool:
        """Whether every TCP login to this account must give a password the server checks: a
        password plugin with a stored hash (no empty password, no plugin that checks none)."""
        methods = [(plugin.lower(), stored) for plugin, stored in self.authentication]
        tcp = [m for m in methods if m[0] not in SOCKET_PLUGINS]
        return bool(tcp) and all(p in PASSWORD_PLUGINS and stored for p, stored in tcp)

    def takes(self, password: str) -> bool | None:
        """Whether this account takes ``password``, from its stored hash: known only for
        ``mysql_native_password`` (an unsalted hash); None for the others."""
        tcp = [(p.lower(), h) for p, h in self.authentication if p.lower() not in SOCKET_PLUGINS]
        if self.factors != 1 or not tcp or any(p != NATIVE_PASSWORD for p, _ in tcp):
            return None
        wanted = native_password_hash(password)
        return any(h.upper() == wanted for _, h in tcp)

    def differences(self, other: AccountOptions) -> list[str]:
        """What differs from ``other``, named for messages (no values: they are not secrets,
        but a REQUIRE subject can be long)."""
        out = []
        if self.require != other.require:
            out.append("another TLS requirement (REQUIRE)")
        if self.limits != other.limits:
            out.append("other resource limits")
        if self.expiry_policy != other.expiry_policy:
            out.append("another password expiry policy")
        if self.locked != other.locked:
            out.append("another account lock state")
        if self.password_options != other.password_options:
            out.append("other password options")
        return out

    def alter_from(self, have: AccountOptions) -> tuple[str, tuple[str, ...]] | None:
        """The ``ALTER USER`` tail (SQL, parameters) that turns ``have`` into these options.

        None when nothing differs. Clause order suits both MariaDB (REQUIRE, WITH, lock, password)
        and MySQL.
        """
        if self == have:
            return None
        sql, params = self.require.clause()
        parts = [sql]
        wanted, had = dict(self.limits), dict(have.limits)
        limits = [f"{name} {wanted.get(name, '0')}" for name in LIMITS if name in wanted | had]
        if limits:
            parts.append("WITH " + " ".join(limits))
        parts.append("ACCOUNT LOCK" if self.locked else "ACCOUNT UNLOCK")
        parts.append(f"PASSWORD EXPIRE {self.expiry_policy}")
        wanted_pw, had_pw = dict(self.password_options), dict(have.password_options)
        for name, default in PASSWORD_OPTION_DEFAULTS.items():
            if name in wanted_pw | had_pw:
                parts.append(f"{name} {wanted_pw.get(name, default)}".strip())
        return " ".join(parts), params


def parse_create_user(lines: Iterable[str]) -> AccountOptions:
    """The options of ``SHOW CREATE USER`` output (one or more statements: MariaDB adds an
    ``ALTER USER`` line for the expiry policy of an expired account)."""
    state: dict[str, object] = {}
    limits: dict[str, str] = {}
    password_options: dict[str, str] = {}
    for line in lines:
        tokens = tokenize(line)
        if not tokens:
            continue
        _Options(tokens, state, limits, password_options).parse()
    require = state.get("require", TlsRequirement())
    assert isinstance(require, TlsRequirement)
    credential = hashlib.sha256(str(state.get("credential", "")).encode()).hexdigest()
    methods = state.get("auth", ())
    assert isinstance(methods, tuple)
    factors = state.get("factors", 1)
    assert isinstance(factors, int)
    return AccountOptions(
        credential=credential,
        authentication=methods,
        factors=factors,
        require=require,
        limits=tuple(sorted((k, v) for k, v in limits.items() if float(v) != 0)),
        expiry_policy=str(state.get("expiry", "DEFAULT")),
        locked=bool(state.get("locked", False)),
        password_options=tuple(
            sorted((k, v) for k, v in password_options.items() if PASSWORD_OPTION_DEFAULTS[k] != v)
        ),
    )


def parse_require(create_user: str) -> TlsRequirement:
    """The REQUIRE clause of a ``SHOW CREATE USER`` statement (NONE when absent)."""
    return parse_create_user([create_user]).require


class _Options(TokenCursor):
    what = "SHOW CREATE USER"

    def __init__(
        self,
        tokens: list[Token],
        state: dict[str, object],
        limits: dict[str, str],
        password_options: dict[str, str],
    ) -> None:
        super().__init__(tokens)
        self.state, self.limits, self.password_options = state, limits, password_options

    def number(self) -> str:
        token = self.take()
        text = token.value
        nxt = self.peek()
        if nxt is not None and nxt.kind == "punct" and nxt.value == ".":
            self.take()
            text += "." + self.take().value
        if token.kind != "word" or not _NUMBER.fullmatch(text):
            raise ConfigurationError("SHOW CREATE USER has an option value that is not a number")
        return str(int(text)) if "." not in text else format(float(text), "g")

    def account(self) -> None:
        self.take()
        if self.peek() is not None and self.peek() == Token("punct", "@"):
            self.take()
            self.take()

    # --- grammar --------------------------------------------------------------------------------

    def parse(self) -> None:
        self.expect("CREATE", "ALTER")
        self.expect("USER")
        self.account()
        while self.peek() is not None:
            word = self.take()
            if not word.kind == "word":
                raise ConfigurationError("SHOW CREATE USER has an option it does not name")
            handlers: dict[str, Callable[[], object]] = {
                "IDENTIFIED": self.identified,
                "REQUIRE": self.require,
                "WITH": self.with_limits,
                "PASSWORD": self.password,
                "ACCOUNT": self.account_lock,
                "DEFAULT": self.default_role,
                "COMMENT": self.take,
                "ATTRIBUTE": self.take,
                "FAILED_LOGIN_ATTEMPTS": lambda: self.set_password_option(
                    "FAILED_LOGIN_ATTEMPTS", self.number()
                ),
                "PASSWORD_LOCK_TIME": lambda: self.set_password_option(
                    "PASSWORD_LOCK_TIME",
                    self.expect("UNBOUNDED") if self.at("UNBOUNDED") else self.number(),
                ),
            }
            handler = handlers.get(word.value.upper())
            if handler is None:
                raise ConfigurationError(
                    "SHOW CREATE USER has an option Keyturn does not know; nothing was mirrored"
                )
            handler()

    def set_password_option(self, name: str, value: str) -> None:
        self.password_options[name] = value

    def identified(self) -> None:
        """Read the authentication clause (MariaDB's ``VIA a OR b`` and MySQL's ``AND
        IDENTIFIED`` chains included): the methods, and a digest of the clause."""
        start = self.pos
        methods, factors = self._methods()
        self.state["credential"] = "\x00".join(t.value for t in self.tokens[start : self.pos])
        self.state["auth"], self.state["factors"] = tuple(methods), factors

    def _methods(self) -> tuple[list[tuple[str, str]], int]:
        methods: list[tuple[str, str]] = []
        factors = 1
        while True:
            how = self.expect("BY", "VIA", "WITH")
            if how == "BY":
                if self.at("RANDOM"):
                    self.take()
                    self.expect("PASSWORD")
                    methods.append(("", ""))
                else:
                    hashed = self.at("PASSWORD")
                    if hashed:
                        self.take()
                    # MariaDB prints BY PASSWORD '<native hash>'; a bare BY 'text' is a
                    # password, never printed: its plugin is not known here.
                    methods.append((NATIVE_PASSWORD if hashed else "", self.take().value))
            else:
                while True:
                    plugin, stored = self.take().value, ""  # the plugin
                    if self.at("USING", "AS", "BY"):
                        self.take()
                        stored = self.take().value
                    methods.append((plugin, stored))
                    if how == "VIA" and self.at("OR"):
                        self.take()
                        continue
                    break
            after = self.tokens[self.pos + 1] if self.pos + 1 < len(self.tokens) else None
            if self.at("AND") and after is not None and after.is_word("IDENTIFIED"):
                self.pos += 2
                factors += 1
                continue
            return methods, factors

    def require(self) -> None:
        if self.at("NONE", "SSL", "X509"):
            self.state["require"] = TlsRequirement(self.take().value.upper())
            return
        values: dict[str, str] = {}
        while self.at("ISSUER", "SUBJECT", "CIPHER", "AND"):
            word = self.take().value.upper()
            if word == "AND":
                continue
            value = self.take()
            if value.kind != "string":
                raise ConfigurationError("a REQUIRE clause is not understood")
            values[word] = value.value
        if not values:
            raise ConfigurationError("a REQUIRE clause is not understood")
        self.state["require"] = TlsRequirement(
            "SPECIFIED", values.get("ISSUER"), values.get("SUBJECT"), values.get("CIPHER")
        )

    def with_limits(self) -> None:
        if not self.at(*LIMITS):
            raise ConfigurationError("SHOW CREATE USER has a WITH clause Keyturn does not know")
        while self.at(*LIMITS):
            name = self.take().value.upper()
            self.limits[name] = self.number()

    def password(self) -> None:
        what = self.expect("EXPIRE", "HISTORY", "REUSE", "REQUIRE")
        if what == "EXPIRE":
            if self.at("DEFAULT", "NEVER"):
                self.state["expiry"] = self.take().value.upper()
            elif self.at("INTERVAL"):
                self.take()
                days = self.number()
                self.expect("DAY")
                self.state["expiry"] = f"INTERVAL {days} DAY"
            # else: expired now, which a new password clears; not mirrored
        elif what == "HISTORY":
            value = self.expect("DEFAULT") if self.at("DEFAULT") else self.number()
            self.set_password_option("PASSWORD HISTORY", value)
        elif what == "REUSE":
            self.expect("INTERVAL")
            if self.at("DEFAULT"):
                value = self.expect("DEFAULT")
            else:
                value = f"{self.number()} DAY"
                self.expect("DAY")
            self.set_password_option("PASSWORD REUSE INTERVAL", value)
        else:
            self.expect("CURRENT")
            value = self.take().value.upper() if self.at("DEFAULT", "OPTIONAL") else ""
            self.set_password_option("PASSWORD REQUIRE CURRENT", value)

    def account_lock(self) -> None:
        self.state["locked"] = self.expect("LOCK", "UNLOCK") == "LOCK"

    def default_role(self) -> None:
        """MySQL 8 prints default roles here too; they are read from SHOW GRANTS instead."""
        self.expect("ROLE")
        self.account()
        while self.peek() == Token("punct", ","):
            self.take()
            self.account()
