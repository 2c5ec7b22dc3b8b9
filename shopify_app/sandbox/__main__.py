"""`python -m shopify_app.sandbox play FILE`: play a scenario, print what Payday holds as JSON.

Exit 0 when the file was played (whatever the outcome), 2 when it is malformed, 1 when the
system could not run."""
from __future__ import annotations

import argparse
import json
import logging
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shopify_app.sandbox")
    sub = parser.add_subparsers(dest="command", required=True)
    play = sub.add_parser("play", help="play a scenario file and print the result as JSON")
    play.add_argument("file")
    play.add_argument("--check", action="store_true", help="also compare with the file's expect (to stderr)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    try:
        with open(args.file, encoding="utf-8") as fh:
            scenario = json.load(fh)
        from .player import check
        check(scenario)
    except (OSError, ValueError) as exc:
        print(f"malformed scenario {args.file}: {exc}", file=sys.stderr)
        return 2
    try:
        from .player import Player, compare
        from .system import running_system

        with running_system() as (system, _settings):
            result = Player(system).play(scenario)
    except Exception as exc:  # the system could not run: say so, non-zero
        logging.getLogger("skilvis.sandbox").exception("the scenario could not be played")
        print(f"could not play {args.file}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, ensure_ascii=False, indent=1))
    if args.check:
        for problem in compare(result, scenario):
            print(f"DIFFERS {problem}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
