"""The site's own records: scheduler job runs, and read-only views of the time-series catalog."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from qvp_site.db.audit import audited


class JobRun(models.Model):
    """One run (or skip) of a scheduled job, with its outcome."""

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        SKIPPED = "skipped", "skipped (running elsewhere)"

    job = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    host = models.CharField(max_length=255, blank=True)
    pid = models.IntegerField(null=True, blank=True)
    output = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["job", "-started_at"], name="jobrun_latest_per_job_idx")]
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.job} {self.status} at {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def duration(self):
        return self.finished_at - self.started_at if self.finished_at else None


class TimeSeriesTable(models.Model):
    """A time-series table (the catalog written by the migration operations; read-only).

    NULL in the text columns means "none" (no retention, no compression), as the SQL has it.
    """

    table_name = models.TextField(primary_key=True)
    time_column = models.TextField()
    chunk_interval = models.TextField()
    retention_default = models.TextField(null=True)  # noqa: DJ001
    compress_after = models.TextField(null=True)  # noqa: DJ001
    retention_last_run = models.DateTimeField(null=True)
    retention_last_result = models.TextField(null=True)  # noqa: DJ001

    class Meta:
        # Unmanaged: migrations own these rows, and test flushes must not empty them.
        managed = False
        db_table = "qvp_timeseries_table"
        ordering = ["table_name"]

    def __str__(self) -> str:
        return self.table_name


class TimeSeriesAggregate(models.Model):
    """A continuous aggregate or summary table over a time-series table (read-only)."""

    view_name = models.TextField(primary_key=True)
    source_table = models.TextField()
    bucket_width = models.TextField()
    refresh_window = models.TextField()
    refreshed_at = models.DateTimeField(null=True)
    refreshed_from = models.DateTimeField(null=True)
    refreshed_to = models.DateTimeField(null=True)

    class Meta:
        managed = False
        db_table = "qvp_timeseries_aggregate"
        ordering = ["view_name"]

    def __str__(self) -> str:
        return self.view_name


class AuditEntry(models.Model):
    """One insert, update or delete of an audited table, written by the database's trigger.

    Append-only: the application's role may only read it, and a trigger refuses updates and
    deletes to everyone but the sealer's one step, which links an entry into the hash chain
    (``seq``, ``prev_hash``, ``hash``) after its transaction commits; signed checkpoints
    (``AuditCheckpoint``) anchor the chain. See ``qvp_site/db/audit.py``; ``manage.py
    verify_audit`` checks it all.
    """

    class Operation(models.TextChoices):
        INSERT = "INSERT", "insert"
        UPDATE = "UPDATE", "update"
        DELETE = "DELETE", "delete"
        SNAPSHOT = "SNAPSHOT", "state when auditing began"

    table_name = models.CharField(max_length=63)
    row_key = models.CharField(max_length=100)
    operation = models.CharField(max_length=8, choices=Operation.choices)
    old_row = models.JSONField(null=True)
    new_row = models.JSONField(null=True)
    # The application user who acted (or the command), else the database role.
    actor = models.CharField(max_length=150)
    db_role = models.CharField(max_length=63)
    at = models.DateTimeField()
    # The entry's place in the chain and its links, set by the sealer: null until then (not
    # an empty string, which would be a link of its own).
    seq = models.BigIntegerField(null=True, unique=True)
    prev_hash = models.CharField(max_length=64, null=True)  # noqa: DJ001
    hash = models.CharField(max_length=64, null=True)  # noqa: DJ001

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["table_name", "row_key", "id"], name="audit_history_of_row_idx"),
            models.Index(fields=["actor", "-at"], name="audit_by_actor_idx"),
            models.Index(fields=["-at"], name="audit_recent_idx"),
            # The sealer's next round: the entries not linked yet.
            models.Index(
                fields=["id"], condition=models.Q(seq__isnull=True), name="audit_unlinked_idx"
            ),
        ]
        # The audit trail is written only by the database: no add, change or delete anywhere.
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.operation} {self.table_name} {self.row_key} by {self.actor}"


class AuditCheckpoint(models.Model):
    """The chain's head at ``seq`` (its ``hash``), signed with Ed25519 by the sealer with a
    key the database never holds; also appended to the checkpoint file outside the database.
    Append-only, as the entries are."""

    seq = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    signed_at = models.DateTimeField()
    key_id = models.CharField(
        max_length=16, help_text="the signing key's id (its public key's digest)"
    )
    signature = models.CharField(max_length=128)

    class Meta:
        ordering = ["-seq"]
        indexes = [models.Index(fields=["-seq"], name="audit_checkpoint_seq_idx")]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"checkpoint at entry {self.seq} by key {self.key_id}"


@audited
class ApiToken(models.Model):
    """A key a program authenticates with, acting as its user. Only a SHA-256 digest of the key
    is kept: the key itself is shown once, when the token is created (qvp_site/tokens.py).
    Revoked tokens stay, with who revoked them and when, for the record."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,  # a user with tokens is deactivated, and the record stays
        related_name="api_tokens",
        db_index=False,
    )
    name = models.CharField(max_length=100, help_text="the program or purpose it is for")
    prefix = models.CharField(
        max_length=12, help_text="the key's first characters, to tell keys apart"
    )
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "-created_at"], name="apitoken_by_user_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(digest__regex=r"^[0-9a-f]{64}$"), name="apitoken_digest_sha256"
            ),
            models.CheckConstraint(condition=~models.Q(name=""), name="apitoken_name_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class Archive(models.Model):
    """Rows of a time-series table written to a Parquet file by ``manage.py archive``.

    One archive holds the rows of ``table_name`` with ``time_column`` in [``starts``,
    ``before``) as they were when archived (``starts`` NULL: from the beginning). Archives of a
    table follow one another without overlap, so that none is written twice and retention may
    drop what they hold. ``sha256`` is the file's; a restore refuses a file that differs.
    """

    table_name = models.CharField(max_length=63)
    time_column = models.CharField(max_length=63)
    starts = models.DateTimeField(null=True, blank=True)
    before = models.DateTimeField()
    rows = models.BigIntegerField()
    path = models.TextField()
    sha256 = models.CharField("SHA-256", max_length=64)
    size_bytes = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150)
    restored_at = models.DateTimeField(null=True, blank=True)
    restored_rows = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["table_name", "-before"]
        constraints = [
            models.CheckConstraint(
                name="archive_range_forward",
                condition=models.Q(starts__isnull=True) | models.Q(starts__lt=models.F("before")),
            ),
            models.CheckConstraint(
                name="archive_rows_not_negative", condition=models.Q(rows__gte=0)
            ),
            models.CheckConstraint(
                name="archive_sha256_hex", condition=models.Q(sha256__regex=r"^[0-9a-f]{64}$")
            ),
            models.UniqueConstraint(fields=["table_name", "before"], name="archive_one_per_cutoff"),
        ]

    def __str__(self) -> str:
        return f"{self.table_name} before {self.before:%Y-%m-%d %H:%M} ({self.rows} rows)"
