#!/bin/sh
# Lists every public/open declaration in Sources/ without a doc comment (file:line) and
# exits 1 if there is any. The work is done by check-docs.py (Python 3 standard library).
exec python3 "$(dirname "$0")/check-docs.py" "$@"
