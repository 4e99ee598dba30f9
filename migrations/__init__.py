"""The database's Alembic migrations (versions/), run from code by service.db.migrate."""

# The revision of the newest migration in versions/. A command on a database already at it
# reads this instead of asking Alembic, whose import and reading of the migrations cost
# about a tenth of a short local sweep (issue 22). Change it with every new migration; a
# test checks it against Alembic's own head.
HEAD_REVISION = "0009_early_stopping"
