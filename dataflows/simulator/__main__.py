"""Run the simulator's command line: ``python -m dataflows.simulator --help``."""

from dataflows.simulator.cli import app

if __name__ == "__main__":
    app(prog_name="python -m dataflows.simulator")
