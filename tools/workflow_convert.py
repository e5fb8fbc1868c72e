"""Write the shipped example workflows (``workflows/*.json``) from the PaCo node schemas.

    python -m tools.workflow_convert            # rewrite workflows/*.json
    python -m tools.workflow_convert --check    # write nothing; exit 1 when a shipped file is stale

The format library is ``tools/workflows/`` (node shapes, the builder, the UI -> API converter);
the workflows' content is ``tools/workflows/specs/``.
"""

from __future__ import annotations

import argparse
import sys

from tools.workflows.specs import WORKFLOWS_DIR, stale_workflows, write_shipped_workflows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write the shipped example workflows (workflows/*.json) from the PaCo node schemas."
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a shipped file is stale"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_workflows()
        for name in stale:
            print(f"workflows/{name}.json is stale: run python -m tools.workflow_convert")
        return 1 if stale else 0
    for written in write_shipped_workflows():
        print(written.relative_to(WORKFLOWS_DIR.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
