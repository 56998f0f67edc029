"""Stand-in for the get-pip.py that ansible-test downloads to bootstrap pip
into the virtual environments of its sanity tests.

ansible-test fetches that script from a host this project's machines do not
reach; scripts/sanity.sh copies this file to the cache path where
ansible-test looks for it first. It takes the arguments ansible-test gives
get-pip.py (pip install options and packages, pip==<version> among them):
pip comes from the Python's own ensurepip, and then installs those packages
from the package index as get-pip.py would.
"""

import ensurepip
import subprocess
import sys

GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")

ensurepip.bootstrap(upgrade=True)
args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))
