"""``python -m femtows.websockets``: the same command line as ``python -m femtows``, for the
muscle memory of ``python -m websockets`` users (see femtows.cli)."""

from femtows.cli import run

if __name__ == "__main__":
    run()
