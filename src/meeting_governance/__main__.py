"""`python -m meeting_governance` runs the same CLI as the console script."""

from meeting_governance.cli import main

if __name__ == "__main__":
    main()
