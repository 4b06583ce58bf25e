"""tasks: attempts, idempotency keys, cancellation (the queue backend)

Adds ``attempts`` and ``max_attempts`` (bounded retries), a unique
``idempotency_key`` (one task per key), ``cancel_requested``,
``lease_expires_at`` (the lease's end, set by its owner), and the status
``cancelled``. Existing tasks count as one attempt of one allowed if they
ever started, none otherwise.

Revision ID: tasks_0002
Revises: tasks_0001
Create Date: 2026-12-02 15:00:00.000000

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "tasks_0002"
down_revision = "tasks_0001"
branch_labels = None
depends_on = None

OLD_STATUSES = "status IN ('queued', 'running', 'succeeded', 'failed', 'interrupted')"
NEW_STATUSES = "status IN ('queued', 'running', 'succeeded', 'failed', 'interrupted', 'cancelled')"


def upgrade():
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("max_attempts", sa.Integer(), server_default="1", nullable=False)
        )
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=255), nullable=True))
        batch_op.add_column(
            sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("cancel_requested", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_tasks_idempotency_key"), ["idempotency_key"]
        )
        batch_op.drop_constraint(batch_op.f("ck_tasks_status_known"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_tasks_status_known"), NEW_STATUSES)
    op.execute("UPDATE tasks SET attempts = 1 WHERE started_at IS NOT NULL")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_check_constraint(
            batch_op.f("ck_tasks_attempts_range"), "attempts >= 0 AND attempts <= max_attempts"
        )


def downgrade():
    op.execute("UPDATE tasks SET status = 'interrupted' WHERE status = 'cancelled'")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_tasks_attempts_range"), type_="check")
        batch_op.drop_constraint(batch_op.f("ck_tasks_status_known"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_tasks_status_known"), OLD_STATUSES)
        batch_op.drop_constraint(batch_op.f("uq_tasks_idempotency_key"), type_="unique")
        batch_op.drop_column("cancel_requested")
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("idempotency_key")
        batch_op.drop_column("max_attempts")
        batch_op.drop_column("attempts")
