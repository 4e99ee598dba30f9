"""The read-only web dashboard served by `bplab dashboard` (issue 17).

app.py builds the Starlette application; sweep_data.py and run_data.py assemble what the
pages show from the CLI's own functions and service.db.dashboard_queries; templates/ and
static/ (with uPlot vendored under static/vendor/) are shipped as package data.
"""
