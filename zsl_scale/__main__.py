"""``python -m zsl_scale`` = the ``zsl-scale`` command."""

from zsl_scale.cli import main

if __name__ == "__main__":
    main()
