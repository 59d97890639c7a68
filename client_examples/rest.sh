#!/usr/bin/env bash
# Plain REST with curl: invoke (with the served model in the response headers), stream (server-sent
# events) and batch, each choosing model and prompt style through "configurable".
# Every call sets a timeout (--max-time) and retries 429 and 503 after the Retry-After the server
# sends (curl's --retry honours it; it also retries 408, 500, 502 and 504).
#
#   bash client_examples/rest.sh [SERVER_URL]    (default http://127.0.0.1:8000)
set -euo pipefail
URL="${1:-${SERVER_URL:-http://127.0.0.1:8000}}"
RETRY=(--retry 3 --retry-max-time 120)

echo "== invoke (see x-served-by and x-request-id) =="
curl -sS --fail-with-body --max-time 120 "${RETRY[@]}" -D - "$URL/chat/invoke" \
  -H 'content-type: application/json' \
  -d '{"input": {"question": "What is LangServe?"},
       "config": {"configurable": {"llm_model": "local", "prompt_style": "concise"},
                  "tags": ["curl"], "metadata": {"user_id": "curl-user"}}}'
echo

echo "== stream =="
curl -sS --fail-with-body --max-time 120 "${RETRY[@]}" -N "$URL/chat/stream" \
  -H 'content-type: application/json' \
  -d '{"input": {"question": "Name a fruit."}, "config": {"configurable": {"llm_model": "local"}}}'
echo

echo "== batch =="
curl -sS --fail-with-body --max-time 120 "${RETRY[@]}" "$URL/fallback/batch" \
  -H 'content-type: application/json' \
  -d '{"inputs": [{"question": "What is 1 + 1?"}, {"question": "파이썬의 장점은?"}]}'
echo

echo "== a typo in configurable is a 422 naming the valid ids =="
curl -sS --max-time 30 -o /dev/stderr -w '%{http_code}\n' "$URL/chat/invoke" \
  -H 'content-type: application/json' \
  -d '{"input": {"question": "hi"}, "config": {"configurable": {"temp": 0.5}}}'
