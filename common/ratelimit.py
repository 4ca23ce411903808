"""A request-rate limiter shared by every thread, process and machine.

``limiter_for("lob", limit=150, period_s=5).acquire()`` blocks until one more
request may start without ``limit`` + 1 starts ever falling inside one window
of ``period_s`` seconds, wherever the other starts came from.  Call it right
before the outbound request, outside any database transaction.

Why a sliding window log, not a fixed window or a token bucket
--------------------------------------------------------------
A fixed window (a counter reset every ``period_s``) lets ``limit`` requests
through at the end of one window and ``limit`` more at the start of the next:
2x the limit within a few milliseconds, which a vendor that counts over a
sliding window answers with 429s.  A token bucket or GCRA with a burst of
``limit`` has the same flaw in a milder form (a full burst, then a steady
refill on top of it).  We keep the start times themselves, the last ``limit``
of them, and let a request start only when the oldest of those started a whole
window ago.  That is exact for a sliding window, and a stream that obeys a
sliding window obeys every fixed window too, so it is safe whichever way the
vendor counts.  The cost is ``limit`` stored times per name: 150 for Lob.

The guarantee, and why it holds
-------------------------------
Both backends keep ``limit`` slots per name.  A start takes a slot whose
time is at least ``window`` old and writes its own time into it.  So the
starts recorded in one slot are at least ``window`` apart, a window holds at
most one start per slot, and ``limit`` slots give at most ``limit`` starts.
This needs no global lock, only that taking a slot is atomic: a row lock on
PostgreSQL, the single writer of SQLite, a Lua script in Redis.

``window`` is the vendor's period plus a safety margin (default 1 %, 50 ms
for Lob): a start is recorded when the permit is granted, and the request
reaches the vendor a little later, by a delay that varies (commit, thread
scheduling, network).  The margin absorbs that variation, so the vendor, not
only our log, sees at most ``limit`` requests per period.

Group rounds
------------
A limiter's threads in one process take permits in rounds (``RateLimiter``):
one store step for every thread waiting at that moment, so the store sees
one taker per process and ``k`` waiting threads cost one write, not ``k``.

Clocks
------
Times come from the store that decides, never from the workers' hosts:
PostgreSQL's ``clock_timestamp()`` (the time when the slot is taken, not the
transaction's start), Redis's ``TIME``.  Machines with skewed clocks therefore
agree, and each slot's times are written by one clock.  SQLite can only be
shared by processes on one host, so its (one) local clock is used.  Tests may
inject a clock (and a sleep) to step time by hand.

Backends
--------
Redis when ``RATE_LIMIT_REDIS_URL`` is set, or the task queue's broker is
Redis (``Q_CLUSTER["redis"]``); the database otherwise.  ``RATE_LIMIT_BACKEND``
(``"database"`` or ``"redis"``) forces one.  The database backend stores its
slots in ``printers.models.RateLimitSlot``.  A store that cannot be reached
raises its own error: the caller treats it as a transient failure and no
request is sent, never an unlimited one.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from django.conf import settings
from django.db import connections, transaction

Backend = Literal["database", "redis"]
Clock = Callable[[], float]  # seconds since the epoch

# The share of the period added as a safety margin, unless one is given.
DEFAULT_MARGIN_FRACTION = 0.01
# A waiter never sleeps less (no busy loop) ...
MIN_SLEEP_S = 0.001
REDIS_KEY_PREFIX = "postcards:ratelimit:"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# Requests and seconds per printer kind.  Lob documents 150 per 5 s per key
# and endpoint; Stannp 300-3,000 per minute by plan (the lowest here: raise it
# with PRINTER_RATE_LIMITS for a bigger plan); IntelliPrint 100 per minute;
# Taylor has no documented limit (one a second until they tell us); the
# sandbox simulator answers with Lob's rate-limit headers, so it gets Lob's.
DEFAULT_PRINTER_LIMITS: dict[str, tuple[int, float]] = {
    "lob": (150, 5.0),
    "stannp": (300, 60.0),
    "intelliprint": (100, 60.0),
    "taylor": (60, 60.0),
    "sandbox": (150, 5.0),
}


class RateLimitTimeout(Exception):
    """No permit came free within the caller's timeout.  ``retry_after`` is
    the estimated wait (seconds) before one does."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Attempt:
    """One try at taking slots: granted (``count`` of them, ``at`` the store's
    time of the grant, epoch seconds), or how long until one could be."""

    granted: bool
    wait_s: float = 0.0  # granted: how long the ones not served (taking some) wait; 0: unknown, ask again
    at: float | None = None
    count: int = 0
    times: tuple[float, ...] = ()  # each slot's time as written, when the store has several
    # The limiter's monotonic clock when the store step that gave this answer returned.
    step_at: float | None = None


class _TooFew(Exception):
    """Fewer free slots than asked for: rolls the partial take back."""


class _Store(Protocol):
    def try_take(self, n: int) -> _Attempt:
        """All ``n`` slots, or none."""
        ...

    def try_take_some(self, n: int) -> _Attempt:
        """As many free slots as there are, from 1 to ``n``, in one atomic step."""
        ...

    def check_caller(self) -> None:
        """Raise if the calling thread may not take permits (runs in the caller's thread)."""
        ...


class _Ticket:
    """One thread's request for a permit in a group round."""

    __slots__ = ("attempt", "error")

    def __init__(self) -> None:
        self.attempt: _Attempt | None = None
        self.error: BaseException | None = None


class RateLimiter:
    """At most ``limit`` starts per ``period_s`` seconds under ``name``,
    for every process that uses the same store.

    Within one process the limiter's threads take permits in group rounds: one
    thread at a time (the round's leader) asks the store, for itself and for
    every thread that asked for one permit while the previous round ran, in
    one atomic step (one transaction on the database, one script run on
    Redis).  The store sees one taker per process instead of one per thread:
    on SQLite no thread of the process sleeps in the busy handler behind
    another of the same process, and ``k`` waiting threads cost one write, not
    ``k``.  The guarantee is the store's, unchanged: each permit is a slot.
    """

    def __init__(
        self,
        name: str,
        *,
        limit: int,
        period_s: float,
        store: _Store,
        margin_s: float,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Clock = time.monotonic,
    ) -> None:
        self.name = name
        self.limit = limit
        self.period_s = period_s
        self.margin_s = margin_s
        self._store = store
        self._sleep = sleep
        self._monotonic = monotonic
        self._round = threading.Condition(threading.Lock())
        self._leading = False  # a round is at the store
        self._pending: list[tuple[_Ticket, int]] = []  # (ticket, n), oldest first
        self._granted = threading.local()  # per thread: when its last granted try began
        self.rounds = 0  # store calls made by group rounds (for tests and benchmarks)

    @property
    def window_s(self) -> float:
        """The gap kept between the starts that share a slot."""
        return self.period_s + self.margin_s

    def acquire(self, n: int = 1, *, timeout_s: float | None = None) -> float:
        """Block until ``n`` requests may start; the seconds waited.

        Raises :class:`RateLimitTimeout` as soon as it is clear that no permit
        comes free within ``timeout_s`` (None waits as long as it takes).
        """
        self._check_n(n)
        self._store.check_caller()
        started = self._monotonic()
        deadline = None if timeout_s is None else started + timeout_s
        while True:
            attempt = self._take(n)
            if attempt.granted:
                self._granted.at = attempt.step_at
                return self._monotonic() - started
            wait = max(attempt.wait_s, MIN_SLEEP_S)
            now = self._monotonic()
            if deadline is not None and now + wait > deadline:
                raise RateLimitTimeout(
                    f"The request limit for {self.name} ({self.limit} every {self.period_s:g} s) is reached; "
                    f"the next request could start in {wait:.2f} s, later than the {timeout_s:g} s allowed.",
                    retry_after=wait,
                )
            self._sleep(wait)

    def permit_age(self) -> float:
        """Seconds since the store step that granted this thread's last permit
        returned: how long the permit has waited in this process since its
        start was recorded (the slot is written at the end of the step, after
        any wait for the store's locks; only the commit's return trip is not
        counted).  A caller about to send checks
        it against the margin; a permit that waited too long (a thread starved
        of CPU between the store and the request) is thrown away and another
        taken, or the request would reach the vendor later than its slot says.
        Infinite before any permit."""
        at = getattr(self._granted, "at", None)
        return float("inf") if at is None else self._monotonic() - at

    def try_acquire(self, n: int = 1) -> bool:
        """Take ``n`` permits if they are free now; never waits (but for
        this process's round at the store)."""
        self._check_n(n)
        self._store.check_caller()
        attempt = self._take(n)
        if attempt.granted:
            self._granted.at = attempt.step_at
        return attempt.granted

    def _take(self, n: int) -> _Attempt:
        """One try in a group round: join the round being gathered, or lead
        it.  A leader asking for one permit takes, in one store step, as many
        as there are free for itself and every thread waiting for one (the
        oldest first); one asking for several takes them all or none, alone."""
        me = _Ticket()
        with self._round:
            self._pending.append((me, n))
            while self._leading and me.attempt is None and me.error is None:
                self._round.wait()
            if me.attempt is None and me.error is None:
                self._leading = True
                batch = [me]
                if n == 1:
                    batch = [t for t, k in self._pending if k == 1][: self.limit]
                    if me not in batch:  # more waiters than the limit: the leader is served too
                        batch[-1] = me
                chosen = {id(t) for t in batch}
                self._pending = [(t, k) for t, k in self._pending if id(t) not in chosen]
        if me.error is not None:
            raise me.error
        if me.attempt is not None:  # a round led by another thread answered
            return me.attempt
        try:
            attempt = self._store.try_take(n) if n > 1 else self._store.try_take_some(len(batch))
        except BaseException as exc:
            with self._round:
                for t in batch:
                    t.error = exc
                self._leading = False
                self._round.notify_all()
            raise
        # The slots were written at the end of the step (after any wait for
        # the store's locks, before its commit): its return is when they started.
        step_at = self._monotonic()
        granted = attempt.count if attempt.granted else 0
        refused = _Attempt(False, attempt.wait_s)
        with self._round:
            self.rounds += 1
            for i, t in enumerate(batch):  # the oldest tickets first
                if i >= granted:
                    t.attempt = refused
                elif n > 1:
                    t.attempt = replace(attempt, step_at=step_at)
                else:
                    at = attempt.times[i] if attempt.times else attempt.at
                    t.attempt = _Attempt(True, at=at, count=1, times=(at,) if at is not None else (), step_at=step_at)
            self._leading = False
            self._round.notify_all()
        assert me.attempt is not None
        return me.attempt

    def _check_n(self, n: int) -> None:
        if not 1 <= n <= self.limit:
            raise ValueError(f"can acquire 1 to {self.limit} permits at once, not {n}")

    def __repr__(self) -> str:
        return f"RateLimiter({self.name!r}, limit={self.limit}, period_s={self.period_s:g})"


# ---------------------------------------------------------------------------- DATABASE
class DatabaseStore:
    """A ring of ``limit`` rows per name (``RateLimitSlot``), each holding one
    recent start time.

    PostgreSQL: one statement takes the oldest expired rows, skipping rows
    another transaction holds (``FOR UPDATE SKIP LOCKED``), so concurrent
    workers take different slots instead of queueing on one; the expiry test
    is re-checked on the row's newest version once it is locked.  SQLite: the
    transaction starts IMMEDIATE (config/database.py), so takers run one at a
    time and a plain read-check-write is atomic.
    """

    def __init__(self, name: str, *, limit: int, window_s: float, clock: Clock | None, using: str) -> None:
        self.name = name
        self.limit = limit
        self.window = dt.timedelta(seconds=window_s)
        self.clock = clock
        self.using = using
        self._ring_ready = False

    def check_caller(self) -> None:
        if connections[self.using].in_atomic_block:
            # A slot taken inside a longer transaction stays locked (SQLite:
            # the whole database) until that transaction ends.
            raise RuntimeError("rate limiter permits must be acquired outside a database transaction")

    def try_take(self, n: int) -> _Attempt:
        return self._try(n, some=False)

    def try_take_some(self, n: int) -> _Attempt:
        return self._try(n, some=True)

    def _try(self, n: int, *, some: bool) -> _Attempt:
        self.check_caller()
        n = min(n, self.limit) if some else n
        if not self._ring_ready:
            self._ensure_ring()
        vendor = connections[self.using].vendor
        take = self._take_postgresql if vendor == "postgresql" else self._take_serialised
        attempt = take(n, some)
        if attempt is None:  # the ring has gone (a flushed table): rebuild it
            self._ensure_ring()
            return _Attempt(False, MIN_SLEEP_S)
        return attempt

    def _ensure_ring(self) -> None:
        from printers.models import RateLimitSlot

        rows = [RateLimitSlot(name=self.name, slot=i, started=_EPOCH) for i in range(self.limit)]
        RateLimitSlot.objects.using(self.using).bulk_create(rows, ignore_conflicts=True)
        self._ring_ready = True

    def _now(self) -> dt.datetime:
        assert self.clock is not None
        return dt.datetime.fromtimestamp(self.clock(), tz=dt.UTC)

    def _take_postgresql(self, n: int, some: bool) -> _Attempt | None:
        from printers.models import RateLimitSlot

        table = connections[self.using].ops.quote_name(RateLimitSlot._meta.db_table)
        # clock_timestamp() is the time of each evaluation, so the expiry test
        # re-run on a row locked after a concurrent update uses the time then.
        now_sql = "clock_timestamp()" if self.clock is None else "%(now)s::timestamptz"
        params: dict[str, Any] = {"name": self.name, "limit": self.limit, "window": self.window, "n": n}
        if self.clock is not None:
            params["now"] = self._now()
        take = f"""
            WITH free AS (
                SELECT id FROM {table}
                WHERE name = %(name)s AND slot < %(limit)s AND started <= {now_sql} - %(window)s
                ORDER BY started LIMIT %(n)s
                FOR UPDATE SKIP LOCKED
            )
            UPDATE {table} AS ring SET started = {now_sql} FROM free WHERE ring.id = free.id
            RETURNING EXTRACT(EPOCH FROM ring.started)
        """  # noqa: S608 - the table name is ours; values are parameters
        wait = f"""
            SELECT EXTRACT(EPOCH FROM started + %(window)s - {now_sql}) FROM {table}
            WHERE name = %(name)s AND slot < %(limit)s
            ORDER BY started LIMIT 1 OFFSET %(offset)s
        """  # noqa: S608
        try:
            with transaction.atomic(using=self.using), connections[self.using].cursor() as cursor:
                # The grant is stamped before the commit and the caller sees it
                # after: an fsync there (tens of ms under load) would be a gap
                # the margin must cover.  A lost slot write costs less.
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
                cursor.execute(take, params)
                taken = cursor.fetchall()
                if not taken or (len(taken) < n and not some):
                    raise _TooFew  # all n or none: undo a partial take
            times = tuple(sorted(float(row[0]) for row in taken))
            return _Attempt(True, at=times[0], count=len(times), times=times)
        except _TooFew:
            pass
        params["offset"] = 0 if some else n - 1
        with connections[self.using].cursor() as cursor:
            cursor.execute(wait, params)
            row = cursor.fetchone()
        return None if row is None else _Attempt(False, float(row[0]))

    def _take_serialised(self, n: int, some: bool) -> _Attempt | None:
        from printers.models import RateLimitSlot

        connection = connections[self.using]
        table = connection.ops.quote_name(RateLimitSlot._meta.db_table)
        # Plain SQL: this runs once per round of every printer call, and the
        # ORM's query building was most of its cost (bench/README.md).
        with transaction.atomic(using=self.using), connection.cursor() as cursor:
            # BEGIN IMMEDIATE has waited for the write lock: from here on no
            # other taker can run until the commit.
            cursor.execute(
                f"SELECT id, started FROM {table} WHERE name = %s AND slot < %s ORDER BY started, slot LIMIT %s",  # noqa: S608
                [self.name, self.limit, n],
            )
            oldest = [(pk, _sqlite_time(started)) for pk, started in cursor.fetchall()]
            if len(oldest) < n:
                return None
            # The clock is read as late as it can be, under the lock and just
            # before the write, so the time written is as close as it can be
            # to the moment the caller sees the grant.
            now = self._now() if self.clock is not None else dt.datetime.now(tz=dt.UTC)
            free = [pk for pk, started in oldest if started <= now - self.window]
            if not free or (len(free) < n and not some):
                needed = oldest[0 if some else n - 1][1]
                return _Attempt(False, (needed + self.window - now).total_seconds())
            marks = ", ".join(["%s"] * len(free))
            cursor.execute(
                f"UPDATE {table} SET started = %s WHERE id IN ({marks})",  # noqa: S608
                [connection.ops.adapt_datetimefield_value(now), *free],
            )
        # Taken fewer than asked: the rest of a round waits for the next slot.
        rest = (oldest[len(free)][1] + self.window - now).total_seconds() if len(free) < n else 0.0
        return _Attempt(True, rest, now.timestamp(), len(free), (now.timestamp(),) * len(free))


def _sqlite_time(value: Any) -> dt.datetime:
    """A ``started`` column as SQLite returns it (Django's text, in UTC)."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(str(value)).replace(tzinfo=dt.UTC)


# ---------------------------------------------------------------------------- REDIS
# A sorted set of recent start times (microseconds) per name.  Atomic in
# Redis: drop the expired starts, then take n places if that many are free
# (ARGV[6] '1': as many as are free, up to n), or answer how long until the
# oldest that must expire does.  Answers {places taken, time} or {0, wait}.  TIME makes the
# Redis server the one clock (allowed in scripts since Redis 5).
_REDIS_SCRIPT = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local now
if ARGV[5] ~= '' then
  now = tonumber(ARGV[5])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
if ARGV[6] == '1' and used < limit and used + n > limit then
  n = limit - used
end
if used + n <= limit then
  for i = 1, n do
    redis.call('ZADD', KEYS[1], now, ARGV[4] .. ':' .. i)
  end
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
  return {n, string.format('%.0f', now)}
end
if ARGV[6] == '1' then
  n = 1
end
local must_expire = used + n - limit
local entry = redis.call('ZRANGE', KEYS[1], must_expire - 1, must_expire - 1, 'WITHSCORES')
return {0, tostring(tonumber(entry[2]) + window - now)}
"""

_redis_clients: dict[str, Any] = {}
_redis_lock = threading.Lock()


def _redis_client(target: str | Mapping[str, Any]) -> Any:
    """One client (and connection pool) per Redis target, shared by threads."""
    import redis

    key = target if isinstance(target, str) else json.dumps(target, sort_keys=True, default=str)
    with _redis_lock:
        if key not in _redis_clients:
            if isinstance(target, str):
                _redis_clients[key] = redis.Redis.from_url(target)
            else:
                _redis_clients[key] = redis.Redis(**target)
        return _redis_clients[key]


class RedisStore:
    """The sliding window log in a Redis sorted set that expires when idle."""

    def __init__(self, name: str, *, limit: int, window_s: float, clock: Clock | None, client: Any) -> None:
        self.key = REDIS_KEY_PREFIX + name
        self.limit = limit
        self.window_us = math.ceil(window_s * 1_000_000)
        self.clock = clock
        self._script = client.register_script(_REDIS_SCRIPT)

    def check_caller(self) -> None:
        pass

    def try_take(self, n: int) -> _Attempt:
        return self._try(n, some=False)

    def try_take_some(self, n: int) -> _Attempt:
        return self._try(n, some=True)

    def _try(self, n: int, *, some: bool) -> _Attempt:
        now = "" if self.clock is None else str(round(self.clock() * 1_000_000))
        args = [self.limit, self.window_us, n, uuid.uuid4().hex, now, "1" if some else "0"]
        granted, micros = self._script(keys=[self.key], args=args)
        if int(granted):
            at = float(micros) / 1_000_000
            return _Attempt(True, at=at, count=int(granted), times=(at,) * int(granted))
        return _Attempt(False, float(micros) / 1_000_000)


# ---------------------------------------------------------------------------- FACTORY
def _settings_redis() -> str | Mapping[str, Any] | None:
    return getattr(settings, "RATE_LIMIT_REDIS_URL", "") or getattr(settings, "Q_CLUSTER", {}).get("redis") or None


def redis_target() -> str | Mapping[str, Any] | None:
    """Where the Redis backend lives, from settings; None for the database."""
    forced = getattr(settings, "RATE_LIMIT_BACKEND", "") or ""
    if forced == "database":
        return None
    target = _settings_redis()
    if forced == "redis" and not target:
        raise ValueError("RATE_LIMIT_BACKEND is redis but neither RATE_LIMIT_REDIS_URL nor a Redis broker is set")
    return target


_limiters: dict[tuple[Any, ...], RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(
    name: str,
    *,
    limit: int,
    period_s: float,
    margin_s: float | None = None,
    backend: Backend | None = None,
    redis: str | Mapping[str, Any] | None = None,
    clock: Clock | None = None,
    sleep: Callable[[float], None] | None = None,
    using: str = "default",
) -> RateLimiter:
    """The limiter for ``name`` (e.g. ``"lob"``): ``limit`` starts per ``period_s``.

    The backend comes from settings unless ``backend`` (and ``redis``, a URL
    or client keyword arguments) says otherwise.  ``margin_s`` defaults to 1 %
    of the period.  ``clock`` (epoch seconds) and ``sleep`` replace the store's
    clock and the real sleep, for tests; the waiting time is then measured
    with ``clock`` too.  Limiters are shared per process, so their Redis
    connection pool is.
    """
    if limit < 1 or period_s <= 0:
        raise ValueError(f"a rate limit needs limit >= 1 and period_s > 0, not {limit} per {period_s}")
    margin = period_s * DEFAULT_MARGIN_FRACTION if margin_s is None else margin_s
    if margin < 0:
        raise ValueError("margin_s cannot be negative")
    target: str | Mapping[str, Any] | None
    if backend == "database":
        target = None
    elif backend == "redis":
        target = redis or _settings_redis()
        if not target:
            raise ValueError("the Redis rate limiter needs a Redis URL")
    else:
        target = redis or redis_target()
    cacheable = clock is None and sleep is None
    key = (name, limit, period_s, margin, json.dumps(target, sort_keys=True, default=str), using)
    if cacheable:
        with _limiters_lock:
            if key in _limiters:
                return _limiters[key]
    window = period_s + margin
    store: _Store
    if target is not None:
        store = RedisStore(name, limit=limit, window_s=window, clock=clock, client=_redis_client(target))
    else:
        store = DatabaseStore(name, limit=limit, window_s=window, clock=clock, using=using)
    limiter = RateLimiter(
        name,
        limit=limit,
        period_s=period_s,
        margin_s=margin,
        store=store,
        sleep=sleep or time.sleep,
        monotonic=clock or time.monotonic,
    )
    if cacheable:
        with _limiters_lock:
            limiter = _limiters.setdefault(key, limiter)
    return limiter


def printer_limits(raw: str = "") -> dict[str, tuple[int, float]]:
    """Each printer kind's (requests, seconds): the defaults, overridden by
    ``raw``, a JSON object like ``{"stannp": [600, 60]}`` (PRINTER_RATE_LIMITS)."""
    limits = dict(DEFAULT_PRINTER_LIMITS)
    if not raw:
        return limits
    try:
        given = json.loads(raw)
        if not isinstance(given, dict):
            raise TypeError
        for kind, (count, seconds) in given.items():
            if int(count) != count or count < 1 or seconds <= 0:
                raise TypeError
            limits[str(kind)] = (int(count), float(seconds))
    except (ValueError, TypeError) as exc:
        raise ValueError(
            'Printer rate limits must be a JSON object of [requests, seconds] pairs, like {"lob": [150, 5]}'
        ) from exc
    return limits
