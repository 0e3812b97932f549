"""`python sweep.py ...` in a clone: the sweep command line, fasttd3x/sweep.py (installed as
`fasttd3x-sweep`). See `python sweep.py --help`."""

from fasttd3x.sweep import main

if __name__ == "__main__":
    main()
