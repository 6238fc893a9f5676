"""The library baseline: Apprise's `workflows://` sending the same messages, one at a time.

    REQUESTS_CA_BUNDLE=standin.pem python -m bench.apprise_send PORT COUNT CHANNELS CARD_JSON

Apprise speaks https only, so the stand-in serves a certificate made for this run and
requests trusts it through REQUESTS_CA_BUNDLE. Apprise waits 5.5 s between two sends to one
target by default; that pause is switched off here, so what is measured is its sending path.
"""

from __future__ import annotations

import json
import sys
import time

import apprise


def text_of(card_message: str) -> tuple[str, str]:
    """The title and the text of the card, as a caller of Apprise would pass them."""
    card = json.loads(card_message)["attachments"][0]["content"]
    texts = [b.get("text", "") for b in card.get("body", []) if isinstance(b, dict)]
    return (texts[0] if texts else "Jira"), "\n\n".join(t for t in texts[1:] if t)


def main() -> None:
    port, count, channels, card = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    title, body = text_of(card)
    targets = []
    for n in range(channels):
        plugin = apprise.Apprise.instantiate(f"workflows://127.0.0.1:{port}/ch{n}/benchsig")
        assert plugin, "Apprise did not accept the workflows:// URL"
        plugin.request_rate_per_sec = 0
        targets.append(plugin)
    sent = 0
    started = time.perf_counter()
    for n in range(count):
        sent += bool(targets[n % channels].notify(body=body, title=title))
    seconds = time.perf_counter() - started
    assert sent == count, f"Apprise sent {sent} of {count}"
    print(
        json.dumps({"sent": sent, "seconds": round(seconds, 3), "per_s": round(sent / seconds, 1)})
    )


if __name__ == "__main__":
    main()
