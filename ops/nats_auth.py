"""NATS users: one per process kind, each allowed only the subjects it needs.

Every user's permissions are allow-lists (NATS refuses whatever is not listed),
built here from the names in `schemas.subjects`, and rendered as the
`authorization` block of a nats-server configuration file. Passwords are not in
the file: it names the environment variables `$CONVEYOR_NATS_PASSWORD_<USER>`, so
the same file serves the embedded stack (`ops.stack`, which sets them when it
starts nats-server) and `compose.yaml` (`ops/nats/auth.conf`, kept equal to
`render()` by a test; regenerate it with `python -m ops.nats_auth`).

Each user receives replies only on its own inbox prefix (`_INBOX_<user>.>`):
nobody may subscribe to another's replies, which carry JetStream API answers,
KV values and pulled messages.

What JetStream permits is decided by subject, and two of its API subjects say
less than one would like:

- Creating a consumer (`$JS.API.CONSUMER.CREATE.<stream>...`) also *updates* an
  existing one of the same name: whoever may create consumers on JOBS could
  rewrite the filter of a durable consumer such as `upload`. So nobody but `ops`
  gets the legacy unnamed create subject (its consumer name is in the body, out
  of reach of a permission), and the named form is allowed with the durable
  consumers' names denied.
- Pulling (`$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`) names the consumer
  in one token, and ephemeral consumers get random names: persistence, the one
  user with ephemeral consumers, is allowed any name but the durables'.
- A consumer's `deliver_subject` is not checked against its creator's rights, so
  creating consumers is as good as publishing anywhere; only persistence may.

These two denials are derived from `subjects.CONSUMER_FILTERS`, so a new durable
consumer is protected as soon as it is declared there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal, get_args

import msgspec

from schemas import subjects
from schemas.events import Failed, Processed, Rejected, Uploaded, Verified, Verifying
from schemas.settings import Settings, env_name
from schemas.subjects import (
    JS_ACK,
    JS_API,
    JS_FLOW_CONTROL,
    KV_PREFIX,
    KV_STREAM_PREFIX,
    direct_get,
    inbox_prefix,
    msg_get,
)

User = Literal[
    "gateway",
    "upload",
    "processing",
    "persistence",
    "notification",
    "webhooks",
    "ops",
    "subscriber",
]
USERS: Final[tuple[User, ...]] = get_args(User)


@dataclass(frozen=True)
class Permissions:
    """What one user may publish and subscribe to; `deny_publish` narrows `publish`."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    deny_publish: tuple[str, ...] = ()


# -- names --------------------------------------------------------------------


def user_named(name: str) -> User:
    """`name` as a NATS user (each actor connects as the user of its own name)."""
    if name not in USERS:
        raise ValueError(f"no NATS user {name!r}; one of {', '.join(USERS)}")
    return name


def password_field(user: User) -> str:
    return f"nats_password_{user}"


def password_env(user: User) -> str:
    """The environment variable holding `user`'s password (also named in the config)."""
    return env_name(password_field(user))


def password_of(settings: Settings, user: User) -> str:
    value: str = getattr(settings, password_field(user))
    return value


def _tag(event: type[msgspec.Struct]) -> str:
    tag = event.__struct_config__.tag
    assert isinstance(tag, str), event
    return tag


def _everything_under(pattern: str) -> str:
    """`jobs.>` from `jobs.*.*`: every subject below the first token."""
    return f"{pattern.split('.', 1)[0]}.>"


# -- subjects a user may publish ----------------------------------------------


def _events(*types: type[msgspec.Struct]) -> list[str]:
    """Publishing job events of these types (for any job) into JOBS."""
    return [subjects.job_event("*", _tag(t)) for t in types]


def _dead_letters(actor: str) -> list[str]:
    return [subjects.dead_letter(actor, "*")]


def _durable(consumer: str) -> list[str]:
    """Bind to, pull from and ack one durable consumer of JOBS."""
    stream = subjects.JOBS_STREAM
    return [
        f"{JS_API}.CONSUMER.INFO.{stream}.{consumer}",
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{consumer}",
        f"{JS_ACK}.{stream}.{consumer}.>",
    ]


def _read_stream(stream: str) -> list[str]:
    """Look up messages of a stream by sequence or subject (plain and direct get)."""
    return [
        msg_get(stream),
        f"{JS_API}.DIRECT.GET.{stream}",  # the request in the body, not the subject
        direct_get(stream, ">"),
    ]


def _ephemeral_consumers(stream: str, filter_subject: str) -> list[str]:
    """Create consumers by name, filtered to `filter_subject` (a filter in the subject
    must equal the one in the request), pull from them and ask their state. The
    durables' names are denied apart (`_durables_denied`).

    Whoever may create a consumer may also give it a `deliver_subject`, and the server
    then publishes the stream's messages there without asking whether the creator may
    (nats-io/nats-server#8274): into `dlq.>`, the relay, anywhere. So only
    persistence, which can not do without, gets this."""
    return [
        f"{JS_API}.CONSUMER.CREATE.{stream}.*.{filter_subject}",
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.*",
        f"{JS_API}.CONSUMER.INFO.{stream}.*",
    ]


def _durables_denied(stream: str) -> list[str]:
    """The durable consumers of JOBS: not to be re-created (updated) or pulled from."""
    out: list[str] = []
    for consumer in subjects.CONSUMER_FILTERS:
        out += [
            f"{JS_API}.CONSUMER.CREATE.{stream}.{consumer}",
            f"{JS_API}.CONSUMER.CREATE.{stream}.{consumer}.>",
            f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{consumer}",
        ]
    return out


def _read_kv(bucket: str) -> list[str]:
    stream = f"{KV_STREAM_PREFIX}{bucket}"
    return [f"{JS_API}.STREAM.INFO.{stream}", *_read_stream(stream)]


def _status() -> list[str]:
    """What `ops.status.collect(lag=False)` reads for the gateway's admin route: stream
    and durable consumer state, and leases. The partitions' lag needs a consumer, which
    the gateway may not create (see `_ephemeral_consumers`)."""
    jobs = subjects.JOBS_STREAM
    return [
        *(f"{JS_API}.STREAM.INFO.{s}" for s in (jobs, subjects.DEAD_LETTER_STREAM)),
        *(f"{JS_API}.CONSUMER.INFO.{jobs}.{c}" for c in subjects.CONSUMER_FILTERS),
        *_read_kv(subjects.LEASES_BUCKET),
    ]


def _kv(bucket: str, *, watch: bool = False) -> list[str]:
    """Read and write one KV bucket; `watch` adds its watchers (ordered push consumers)."""
    stream = f"{KV_STREAM_PREFIX}{bucket}"
    out = [f"{KV_PREFIX}.{bucket}.>", *_read_kv(bucket)]
    if watch:
        # No durable consumer lives on a bucket's stream, so the unnamed create
        # (what nats-py's ordered consumers use) can overwrite nothing of another's.
        out += [
            f"{JS_API}.CONSUMER.CREATE.{stream}",
            f"{JS_API}.CONSUMER.INFO.{stream}.*",
            f"{JS_FLOW_CONTROL}.{stream}.>",
        ]
    return out


# -- the users ----------------------------------------------------------------


def permissions() -> dict[User, Permissions]:
    jobs = subjects.JOBS_STREAM
    notify = (subjects.notify_job("*", "*"), subjects.NOTIFY_OWNERS_ALL)
    relays = (subjects.NOTIFY_JOBS_ALL, subjects.NOTIFY_OWNERS_ALL)
    # Core subscribers may listen to every event and every relay (read-only).
    listen = [_everything_under(subjects.JOBS_SUBJECTS), *relays]

    def inbox(user: User) -> list[str]:
        return [f"{inbox_prefix(user)}.>"]

    table: dict[User, Permissions] = {
        "gateway": Permissions(
            publish=(
                *_events(Uploaded),
                *_kv(subjects.UPLOADS_BUCKET),
                *_kv(subjects.IDEMPOTENCY_BUCKET),
                *_kv(subjects.WEBHOOKS_BUCKET),
                # GET /v1/jobs/{id} and the WebSocket read JOBS by subject and sequence.
                msg_get(jobs),
                # GET /v1/admin/status (read-only).
                *_status(),
            ),
            subscribe=(*inbox("gateway"), *relays),
        ),
        "upload": Permissions(
            publish=(
                *_durable(subjects.UPLOAD_CONSUMER),
                *_events(Verifying, Verified, Rejected, Failed),
                *_dead_letters(subjects.UPLOAD_CONSUMER),
                # Before failing a job it gave up on: has the job ended already?
                msg_get(jobs),
            ),
            subscribe=tuple(inbox("upload")),
        ),
        "processing": Permissions(
            publish=(
                *_durable(subjects.PROCESSING_CONSUMER),
                *_events(Processed, Failed),
                *_dead_letters(subjects.PROCESSING_CONSUMER),
                msg_get(jobs),
            ),
            subscribe=tuple(inbox("processing")),
        ),
        "persistence": Permissions(
            publish=(
                # One ephemeral, ack-less consumer per partition it holds.
                *_ephemeral_consumers(jobs, subjects.STORED_JOBS),
                *_kv(subjects.LEASES_BUCKET, watch=True),
                # What Postgres refuses: a dead letter, and the job fails.
                *_events(Failed),
                *_dead_letters(subjects.PERSISTENCE),
            ),
            subscribe=tuple(inbox("persistence")),
            deny_publish=tuple(_durables_denied(jobs)),
        ),
        "notification": Permissions(
            publish=(
                *_durable(subjects.NOTIFICATION_CONSUMER),
                *notify,
                *_dead_letters(subjects.NOTIFICATION_CONSUMER),
            ),
            subscribe=tuple(inbox("notification")),
        ),
        "webhooks": Permissions(
            publish=(
                *_durable(subjects.WEBHOOKS_CONSUMER),
                *_read_kv(subjects.WEBHOOKS_BUCKET),
                *_dead_letters(subjects.WEBHOOKS_CONSUMER),
            ),
            subscribe=tuple(inbox("webhooks")),
        ),
        "ops": Permissions(
            # The administrator: all of the JetStream API (streams, consumers, buckets,
            # replay, dead letters), acks, and republishing dead letters as events.
            publish=(
                f"{JS_API}.>",
                f"{JS_ACK}.>",
                f"{JS_FLOW_CONTROL}.>",
                f"{KV_PREFIX}.>",
                subjects.JOBS_SUBJECTS,
                subjects.DEAD_LETTER_SUBJECTS,
            ),
            subscribe=tuple(inbox("ops")),
        ),
        "subscriber": Permissions(
            # Read-only: stream info, messages by sequence or subject, and the core
            # subjects; never a consumer, an event, an ack, a delete or a purge.
            publish=(
                f"{JS_API}.STREAM.INFO.{jobs}",
                *_read_stream(jobs),
            ),
            subscribe=(*inbox("subscriber"), *listen),
        ),
    }
    assert set(table) == set(USERS)
    return table


# -- the configuration file ---------------------------------------------------


def _block(name: str, items: Iterable[str], indent: str) -> list[str]:
    return [f"{indent}{name}: [", *(f'{indent}  "{item}"' for item in items), f"{indent}]"]


def render() -> str:
    """The nats-server `authorization` block for every user (passwords by variable)."""
    lines = [
        "# Generated by `python -m ops.nats_auth` from ops/nats_auth.py: do not edit.",
        "# One user per Conveyor process kind, allowed only what it needs; passwords",
        '# come from the environment. See "NATS users" in README.md.',
        "authorization {",
        "  users = [",
    ]
    for user, perms in permissions().items():
        lines += [
            "    {",
            f"      user: {user}",
            f"      password: ${password_env(user)}",
            "      permissions: {",
            "        publish: {",
            *_block("allow", perms.publish, " " * 10),
            *(_block("deny", perms.deny_publish, " " * 10) if perms.deny_publish else []),
            "        }",
            "        subscribe: {",
            *_block("allow", perms.subscribe, " " * 10),
            "        }",
            "      }",
            "    }",
        ]
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


def main() -> None:
    print(render(), end="")


if __name__ == "__main__":
    main()
