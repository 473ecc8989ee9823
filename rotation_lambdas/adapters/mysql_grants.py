"""MySQL-family grants: parsed from ``SHOW GRANTS`` / ``SHOW CREATE USER``, compared, re-issued.

A tokenizer that knows the syntax (backquoted identifiers with doubled backquotes, quoted strings
with escapes, punctuation) feeds a small parser; grants become normalized records that can be
compared between two users and turned back into GRANT / REVOKE statements for another user.
Identifiers are re-quoted by us; users, hosts and strings travel as bound parameters; privilege
names must be keywords. Nothing from the server's text is spliced into SQL unchecked.

Output that cannot be read unambiguously fails closed instead of being mirrored: names in double
quotes (a session whose sql_mode has ANSI_QUOTES: our sessions set their own sql_mode, so this
means something is wrong), and unquoted names (MySQL 5.7 prints column names bare, so a column
called ``a, b`` would read as two columns).

On MySQL 8, the grant option of a *dynamic* privilege (``BACKUP_ADMIN`` and the like) belongs to
that privilege alone; the server prints dynamic privileges on lines of their own, per grant option.
They are recorded per privilege and never widened to the object's static ``GRANT OPTION``.

Errors never quote the grant text: ``SHOW GRANTS`` lines can hold password hashes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ..errors import ConfigurationError

_KEYWORD = re.compile(r"[A-Z][A-Z0-9_]*")
_OBJECT_TYPES = ("TABLE", "FUNCTION", "PROCEDURE", "PACKAGE")


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "word", "ident" (backquoted), "string" ('quoted'), "dquoted", "punct"
    value: str

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.value.upper() in words


def tokenize(text: str) -> list[Token]:
    """Split a statement into tokens; quoted forms are unescaped."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "`":
            value, i = _quoted(text, i, "`", backslash=False)
            tokens.append(Token("ident", value))
        elif ch == "'":
            value, i = _quoted(text, i, ch, backslash=True)
            tokens.append(Token("string", value))
        elif ch == '"':
            # A string, or under ANSI_QUOTES an identifier whose backslashes are literal: the
            # two readings differ (`ho\_app` is not `ho_app`), so it is never read as a name.
            value, i = _quoted(text, i, ch, backslash=True)
            tokens.append(Token("dquoted", value))
        elif ch in "(),.@*=;":
            tokens.append(Token("punct", ch))
            i += 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in "`'\"(),.@*=;":
                i += 1
            tokens.append(Token("word", text[start:i]))
    return tokens


def _quoted(text: str, start: int, quote: str, *, backslash: bool) -> tuple[str, int]:
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if backslash and ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        elif ch == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                out.append(quote)
                i += 2
            else:
                return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise ConfigurationError("a grant statement has an unterminated quoted name")


@dataclass(frozen=True, slots=True, order=True)
class GrantObject:
    """What a privilege is on: ``*.*``, ``db.*``, ``db.table``, or a routine."""

    object_type: str  # "" for tables and levels, else FUNCTION / PROCEDURE / PACKAGE [BODY]
    database: str  # "*" for every database
    name: str  # "*" for every table

    def sql(self) -> str:
        """The ON clause's object, identifiers quoted by us."""
        db = "*" if self.database == "*" else quote_ident(self.database)
        name = "*" if self.name == "*" else quote_ident(self.name)
        prefix = f"{self.object_type} " if self.object_type else ""
        return f"{prefix}{db}.{name}"

    def describe(self) -> str:
        return self.sql()


GLOBAL = GrantObject("", "*", "*")


@dataclass(frozen=True, slots=True, order=True)
class Privilege:
    """One privilege (on one column, when ``column`` is set) on one object.

    Static privileges share their object's grant option, recorded as a privilege named
    ``GRANT OPTION``. A MySQL 8 dynamic privilege (``dynamic``) carries its own (``grantable``).
    """

    obj: GrantObject
    name: str  # upper case keywords, single-spaced; "GRANT OPTION" for WITH GRANT OPTION
    column: str = ""
    dynamic: bool = False
    grantable: bool = False

    def describe(self) -> str:
        column = f" ({quote_ident(self.column)})" if self.column else ""
        option = " WITH GRANT OPTION" if self.grantable else ""
        return f"{self.name}{column} ON {self.obj.describe()}{option}"


# MySQL 8's static privileges (its manual's list); any other name on MySQL 8 is dynamic.
MYSQL_STATIC_PRIVILEGES = frozenset(
    {
        "ALL PRIVILEGES", "ALTER", "ALTER ROUTINE", "CREATE", "CREATE ROLE", "CREATE ROUTINE",
        "CREATE TABLESPACE", "CREATE TEMPORARY TABLES", "CREATE USER", "CREATE VIEW", "DELETE",
        "DROP", "DROP ROLE", "EVENT", "EXECUTE", "FILE", "GRANT OPTION", "INDEX", "INSERT",
        "LOCK TABLES", "PROCESS", "PROXY", "REFERENCES", "RELOAD", "REPLICATION CLIENT",
        "REPLICATION SLAVE", "SELECT", "SHOW DATABASES", "SHOW VIEW", "SHUTDOWN", "SUPER",
        "TRIGGER", "UPDATE", "USAGE",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True, order=True)
class RoleGrant:
    role: str
    role_host: str | None = None  # MySQL 8 roles have hosts; MariaDB roles do not
    admin: bool = False


@dataclass(slots=True)
class UserGrants:
    """Everything ``SHOW GRANTS`` says about one account."""

    privileges: set[Privilege] = field(default_factory=set)
    roles: set[RoleGrant] = field(default_factory=set)
    # (role, host): MySQL 8 roles have hosts, MariaDB's do not (None).
    default_roles: tuple[tuple[str, str | None], ...] = ()
    proxies: set[tuple[str, str, bool]] = field(default_factory=set)


def quote_ident(name: str) -> str:
    """A backquoted identifier; ``%`` doubled because PyMySQL formats statements with ``%``."""
    return "`" + name.replace("`", "``").replace("%", "%%") + "`"


def keyword(name: str) -> str:
    """A privilege keyword, checked: only letters, digits, underscores and single spaces."""
    words = name.upper().split()
    if not words or not all(_KEYWORD.fullmatch(w) for w in words):
        raise ConfigurationError("a grant names a privilege that is not a keyword")
    return " ".join(words)


class TokenCursor:
    """Reads a statement's tokens in order; errors name the statement (``what``), never its
    text (it can hold a password hash)."""

    what = "a statement"

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self, offset: int = 0) -> Token | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise ConfigurationError(f"{self.what} ends too early")
        self.pos += 1
        return token

    def at(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token.is_word(*words)

    def expect(self, *words: str) -> str:
        token = self.take()
        if not token.is_word(*words):
            raise ConfigurationError(f"{self.what} lacks {' or '.join(words)}")
        return token.value.upper()

    def at_punct(self, value: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "punct" and token.value == value


class _Parser(TokenCursor):
    what = "a grant statement"

    def name(self, *, strings: bool = True) -> str:
        """A quoted name: backquoted, or (``strings``) single-quoted as accounts may be."""
        token = self.take()
        if token.kind == "ident" or (strings and token.kind == "string"):
            return token.value
        if token.kind == "dquoted":
            raise ConfigurationError(
                "SHOW GRANTS quoted a name with double quotes (the session's sql_mode has "
                "ANSI_QUOTES), which cannot be read unambiguously; nothing was mirrored"
            )
        if token.kind == "word":
            raise ConfigurationError(
                "SHOW GRANTS printed a name without quotes (as MySQL 5.7 prints column names), "
                "which cannot be read unambiguously; nothing was mirrored",
                hint="grant the privilege on the whole table (or through a view) instead of on "
                "columns, or use MySQL 8 or MariaDB, which quote every name",
            )
        raise ConfigurationError("a grant statement has a name where none is allowed")

    def account(self) -> tuple[str, str | None]:
        user = self.name()
        if self.at_punct("@"):
            self.take()
            return user, self.name()
        return user, None

    def grantee(self, expected: tuple[str, str] | None) -> None:
        """The account after TO, which must be the one whose grants were asked for."""
        user, host = self.account()
        if expected is not None and (user, host or "%") != expected:
            raise ConfigurationError("SHOW GRANTS printed a grant to another account")


def _top_level_has_on(tokens: list[Token]) -> bool:
    depth = 0
    for token in tokens:
        if token.kind == "punct" and token.value == "(":
            depth += 1
        elif token.kind == "punct" and token.value == ")":
            depth -= 1
        elif depth == 0 and token.is_word("TO"):
            return False
        elif depth == 0 and token.is_word("ON"):
            return True
    return False


def parse_show_grants(
    lines: Iterable[str],
    *,
    account: tuple[str, str] | None = None,
    dynamic_privileges: bool = False,
) -> UserGrants:
    """Normalize an account's ``SHOW GRANTS`` output (MySQL 5.7/8.x or MariaDB).

    ``account`` (user, host), when given, is checked against every line's grantee.
    ``dynamic_privileges``: the server is MySQL 8 or later, where names outside
    :data:`MYSQL_STATIC_PRIVILEGES` are dynamic privileges with a grant option of their own.
    """
    grants = UserGrants()
    for line in lines:
        tokens = tokenize(line)
        if not tokens:
            continue
        parser = _Parser(tokens)
        head = parser.take()
        if head.is_word("SET"):
            _parse_default_role(parser, grants, account)
        elif head.is_word("GRANT"):
            if _top_level_has_on(tokens[1:]):
                _parse_privileges(parser, grants, account, dynamic_privileges)
            else:
                _parse_roles(parser, grants, account)
        elif head.is_word("REVOKE"):
            raise ConfigurationError(
                "the account has partial revokes, which alternating users cannot mirror"
            )
        else:
            raise ConfigurationError("SHOW GRANTS returned a statement that is not a grant")
    return grants


def _parse_privileges(
    p: _Parser, grants: UserGrants, account: tuple[str, str] | None, dynamic_privileges: bool
) -> None:
    names: list[tuple[str, tuple[str, ...]]] = []
    while True:
        words: list[str] = []
        while not (p.at_punct(",") or p.at_punct("(") or p.at("ON")):
            token = p.take()
            if token.kind != "word":
                raise ConfigurationError("a grant names a privilege that is not a keyword")
            words.append(token.value)
        columns: tuple[str, ...] = ()
        if p.at_punct("("):
            p.take()
            cols = [p.name(strings=False)]
            while p.at_punct(","):
                p.take()
                cols.append(p.name(strings=False))
            if not p.at_punct(")"):
                raise ConfigurationError("a grant's column list is not understood")
            p.take()
            columns = tuple(cols)
        names.append((keyword(" ".join(words)), columns))
        if p.at_punct(","):
            p.take()
            continue
        break
    p.expect("ON")
    if names[0][0] == "PROXY":
        user, host = p.account()
        p.expect("TO")
        p.grantee(account)
        grantable = _rest_has_grant_option(p)
        grants.proxies.add((user, host or "%", grantable))
        return
    obj = _parse_object(p)
    p.expect("TO")
    p.grantee(account)
    grantable = _rest_has_grant_option(p)
    static_line = False
    for name, columns in names:
        if dynamic_privileges and name not in MYSQL_STATIC_PRIVILEGES:
            if columns or obj != GLOBAL:
                raise ConfigurationError("a dynamic privilege is granted on something not global")
            grants.privileges.add(Privilege(obj, name, dynamic=True, grantable=grantable))
            continue
        static_line = True
        if name == "USAGE":
            continue
        if columns:
            grants.privileges.update(Privilege(obj, name, c) for c in columns)
        else:
            grants.privileges.add(Privilege(obj, name))
    if grantable and static_line:
        grants.privileges.add(Privilege(obj, "GRANT OPTION"))


def _parse_object(p: _Parser) -> GrantObject:
    object_type = ""
    if p.at(*_OBJECT_TYPES):
        object_type = p.take().value.upper()
        if object_type == "PACKAGE" and p.at("BODY"):
            p.take()
            object_type = "PACKAGE BODY"
        if object_type == "TABLE":
            object_type = ""
    first = "*" if p.at_punct("*") else None
    if first is None:
        first = p.name(strings=False)
    else:
        p.take()
    if p.at_punct("."):
        p.take()
        if p.at_punct("*"):
            p.take()
            second = "*"
        else:
            second = p.name(strings=False)
        return GrantObject(object_type, first, second)
    # A bare name is a table of the current database: SHOW GRANTS never prints one.
    raise ConfigurationError("a grant names an object without its database")


def _rest_has_grant_option(p: _Parser) -> bool:
    grantable = False
    while p.peek() is not None:
        token = p.take()
        if token.is_word("GRANT") and p.at("OPTION"):
            grantable = True
    return grantable


def _parse_roles(p: _Parser, grants: UserGrants, account: tuple[str, str] | None) -> None:
    roles: list[tuple[str, str | None]] = []
    while True:
        roles.append(p.account())
        if p.at_punct(","):
            p.take()
            continue
        break
    p.expect("TO")
    p.grantee(account)
    admin = False
    while p.peek() is not None:
        token = p.take()
        if token.is_word("ADMIN") and p.at("OPTION"):
            admin = True
    grants.roles.update(RoleGrant(role, host, admin) for role, host in roles)


def _parse_default_role(p: _Parser, grants: UserGrants, account: tuple[str, str] | None) -> None:
    p.expect("DEFAULT")
    p.expect("ROLE")
    roles: list[tuple[str, str | None]] = []
    if p.at("NONE"):
        p.take()
    else:
        roles.append(p.account())
        while p.at_punct(","):
            p.take()
            roles.append(p.account())
    p.expect("FOR", "TO")
    p.grantee(account)
    grants.default_roles = tuple(sorted(roles, key=lambda r: (r[0], r[1] or "")))


def group_by_object(
    privileges: Iterable[Privilege],
) -> Iterator[tuple[GrantObject, list[Privilege]]]:
    """Privileges grouped per object, in a stable order, for one statement per object."""
    by_object: dict[GrantObject, list[Privilege]] = {}
    for privilege in sorted(privileges):
        by_object.setdefault(privilege.obj, []).append(privilege)
    yield from by_object.items()


def privilege_list(privileges: Iterable[Privilege]) -> str:
    """``SELECT, UPDATE (`a`, `b`)``: names checked as keywords, columns quoted by us."""
    whole: list[str] = []
    columns: dict[str, list[str]] = {}
    for privilege in privileges:
        name = keyword(privilege.name)
        if privilege.column:
            columns.setdefault(name, []).append(privilege.column)
        elif name not in whole:
            whole.append(name)
    parts = whole + [
        f"{name} ({', '.join(quote_ident(c) for c in cols)})" for name, cols in columns.items()
    ]
    return ", ".join(parts)
