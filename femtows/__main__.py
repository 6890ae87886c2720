"""``python -m femtows``: the interactive client and ``serve`` (see femtows.cli)."""

from femtows.cli import run

if __name__ == "__main__":
    run()
