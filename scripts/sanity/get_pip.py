"""Stand-in for the get-pip.py that ansible-test downloads to bootstrap pip
into the virtual environments of its sanity tests.

ansible-test fetches that script from a host this project's machines do not
reach; scripts/sanity.sh copies this file to the cache path where
ansible-test looks for it first. It takes the arguments ansible-test gives
get-pip.py (pip install options and packages, pip==<version> among them):
pip comes from the Python's own ensurepip, and then installs those packages
from the package index as get-pip.py would.

ensurepip.bootstrap() removes every PIP_* variable from this process's
environment and sets PIP_CONFIG_FILE to /dev/null (CPython bpo-19734,
bpo-20053), so that the pip it installs ignores the machine's pip
configuration; the install that follows gets the environment as it was
before. Without that, on a machine that reaches the package index only
through a TLS proxy whose CA is given in /etc/pip.conf (`cert`), the pip
that Python 3.11's ensurepip bundles (23.2, which trusts certifi's CAs
alone, unlike pip 24.2 and later, which also trust the system's store)
cannot fetch pip==23.1.2, and ansible-test 2.16's sanity tests fail before
they start.
"""

import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")

env = dict(os.environ)
ensurepip.bootstrap(upgrade=True)
args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args, env=env))
