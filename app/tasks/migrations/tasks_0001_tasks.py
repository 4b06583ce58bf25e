"""tasks: the example feature's tables

The root of the ``tasks`` branch: ``tasks`` (with names, a note counter and
leases: which server process runs a task, ``runner_id``, and when it last said
it was alive, ``heartbeat_at``) and ``task_notes``.

Revision ID: tasks_0001
Revises:
Create Date: 2026-12-02 02:00:00.000000

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "tasks_0001"
down_revision = None
branch_labels = ("tasks",)
depends_on = None


def upgrade():
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("note_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("runner_id", sa.String(length=255), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'interrupted')",
            name=op.f("ck_tasks_status_known"),
        ),
        sa.CheckConstraint(
            "progress >= 0 AND progress <= 100", name=op.f("ck_tasks_progress_percent")
        ),
        # Autogenerate does not see CHECK constraints; written by hand.
        sa.CheckConstraint(
            "note_count >= 0 AND note_count <= 1000", name=op.f("ck_tasks_note_count_range")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("name", name=op.f("uq_tasks_name")),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tasks_status"), ["status"], unique=False)

    op.create_table(
        "task_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.String(length=2000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_task_notes_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_notes")),
    )
    with op.batch_alter_table("task_notes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_notes_task_id"), ["task_id"], unique=False)


def downgrade():
    with op.batch_alter_table("task_notes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_notes_task_id"))

    op.drop_table("task_notes")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_status"))

    op.drop_table("tasks")
