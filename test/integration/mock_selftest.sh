#!/usr/bin/env bash
# mock_selftest: the mock marketplace framework's own unit tests (a broken
# mock must not be able to make the connector tests pass).
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/../mock/test_mock.py"
