"""Hostile and broken designs the static check S0 must reject before anything runs.

Each case: (id, state source, net source or None for the corpus's good net, expected S0 check,
message fragment). Several would do harm at import time if they were ever executed: S0 must
stop them by reading alone. A net source of None means the corpus's good net (s1_cases.GOOD_NET).
"""



def _state(body: str, imports: str = "import torch\n") -> str:
    return imports + "\n\ndef state(m):\n" + body


S0_CASES = [
    ("file_write", _state("    open('/tmp/llmabr-pwned', 'w').write('x')\n    return {}\n"), None, "name", "`open`"),
    ("file_read", _state("    secret = open('/etc/passwd').read()\n    return {}\n"), None, "name", "`open`"),
    ("dunder_import", _state("    __import__('os').system('id')\n    return {}\n"), None, "name", "__import__"),
    ("os_system", _state("    os.system('touch /tmp/x')\n    return {}\n", "import os\nimport torch\n"), None,
     "import", "`import os` is not allowed"),
    ("subprocess", _state("    subprocess.run(['id'])\n    return {}\n", "import subprocess\n"), None, "import", "subprocess"),
    ("socket_connect", _state("    socket.create_connection(('10.0.0.1', 80))\n    return {}\n", "import socket\n"), None,
     "import", "socket"),
    ("ctypes", _state("    ctypes.CDLL(None).abort()\n    return {}\n", "import ctypes\n"), None, "import", "ctypes"),
    ("getattr_escape", _state("    getattr(torch, 'sa' + 've')(m, '/tmp/x')\n    return {}\n"), None, "name", "`getattr`"),
    ("subclasses_escape", _state("    ().__class__.__bases__[0].__subclasses__()\n    return {}\n"), None, "dunder", "__class__"),
    ("sys_exit", _state("    sys.exit(0)\n", "import sys\n"), None, "import", "sys"),
    ("os_underscore_exit", _state("    os._exit(0)\n", "from os import _exit\n"), None, "import", "from os import"),
    ("signal_tampering", _state("    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n    return {}\n", "import signal\n"), None,
     "import", "signal"),
    ("thread_spawn", _state("    threading.Thread(target=print).start()\n    return {}\n", "import threading\n"), None,
     "import", "threading"),
    ("fork_bomb", _state("    while True:\n        os.fork()\n", "import os\n"), None, "import", "os"),
    ("torch_multiprocessing", _state("    torch.multiprocessing.Process(target=print).start()\n    return {}\n"), None,
     "attribute", ".multiprocessing"),
    ("torch_save", _state("    torch.save(m, '/tmp/stolen.pt')\n    return {}\n"), None, "attribute", ".save"),
    ("numpy_fromfile", _state("    np.fromfile('/etc/shadow')\n    return {}\n", "import numpy as np\n"), None,
     "attribute", ".fromfile"),
    ("torch_hub", _state("    torch.hub.load('evil/repo', 'model')\n    return {}\n"), None, "attribute", ".hub"),
    ("eval_string", _state("    return eval('{}')\n"), None, "name", "`eval`"),
    ("exec_string", _state("    exec('import os')\n    return {}\n"), None, "name", "`exec`"),
    ("compile_string", _state("    compile('1', 'x', 'eval')\n    return {}\n"), None, "name", "`compile`"),
    ("globals_builtins", _state("    globals()['__builtins__']['open']\n    return {}\n"), None, "name", "`globals`"),
    ("relative_import", _state("    return {}\n", "from . import evil\n"), None, "import", "relative imports"),
    ("syntax_error", "import torch\n\ndef state(m)\n    return {}\n", None, "syntax", "syntax error"),
    ("missing_state_function", "import torch\n\n\ndef features(m):\n    return {}\n", None, "entrypoint", "def state(m)"),
    ("missing_trunk", _state("    return {}\n"), "import torch\nfrom torch import nn\n\n\nclass Net(nn.Module):\n    pass\n",
     "entrypoint", "class Trunk"),
    ("trunk_not_a_module", _state("    return {}\n"), "class Trunk:\n    pass\n", "entrypoint", "derive from nn.Module"),
    ("import_time_call", _state("    return {}\n") + "\nprint('side effect at import')\n", None, "structure", "module level"),
    ("huge_source", _state("    x = 0\n" + "    x = x + 1\n" * 2000 + "    return {}\n"), None, "size", "exceed the caps"),
    ("torch_private_c", _state("    torch._C._set_print_stack_traces_on_fatal_signal(True)\n    return {}\n"), None,
     "attribute", "private attribute"),
    ("from_torch_import_private", _state("    return {}\n", "from torch import _C\n"), None, "import", "from torch import _C"),
    ("cpp_extension", _state("    torch.utils.cpp_extension.load_inline('x', 'int y;')\n    return {}\n"), None,
     "attribute", ".utils"),
    ("importlib", _state("    importlib.import_module('os')\n    return {}\n", "import importlib\n"), None,
     "import", "importlib"),
    ("breakpoint", _state("    breakpoint()\n    return {}\n"), None, "name", "`breakpoint`"),
    ("lambda_smuggled_import", _state("    loader = lambda name: __import__(name)\n    return {}\n"), None, "name", "__import__"),
    ("builtins_via_dict", _state("    return {}\n") + "\nclass Sneaky:\n    x = __builtins__\n", None, "name", "__builtins__"),
    ("async_state", "import torch\n\n\nasync def state(m):\n    return {}\n", None, "structure", "async"),
    ("nada_wrong_signature", "import numpy as np\n\n\ndef state_func(bit_rate_kbps_list, buffer_size_second_list):\n"
                             "    return {'normal_states': [], 'time_series_states': []}\n", None, "entrypoint",
     "state_func must take exactly"),
]

NADA_SIGNATURE = ("def state_func(bit_rate_kbps_list, buffer_size_second_list, delay_second_list, "
                  "video_chunk_size_bytes_list,\n               next_chunk_bytes_sizes, video_chunk_remain_num, "
                  "total_chunk_num, all_bit_rate_kbps):\n")


def _nada(body: str, imports: str = "import numpy as np\nimport pandas as pd\n") -> str:
    """A NADA (paper-prompt) state.py: scipy and pandas may be imported, for computation only."""
    return (imports + "\n\n" + NADA_SIGNATURE + "    x = pd.Series(buffer_size_second_list)\n" + body
            + "    return {'normal_states': [[1.0]], 'time_series_states': [[1.0, 2.0]]}\n")


SCIPY = "import pandas as pd\nimport scipy\n"

# NADA designs may import scipy's computation modules and pandas; their I/O, evaluation, option,
# plotting and private parts stay out, and so does pandas' by-name dispatch (getattr in disguise).
NADA_S0_CASES = [
    ("nada_pandas_read_csv", _nada("    pd.read_csv('/etc/passwd')\n"), None, "attribute",
     "`.read_csv` is not allowed in a NADA state function: it reads or writes files"),
    ("nada_pandas_read_pickle", _nada("    pd.read_pickle('/tmp/payload.pkl')\n"), None, "attribute", "`.read_pickle`"),
    ("nada_from_pandas_import_read_csv", _nada("", "import pandas as pd\nfrom pandas import read_csv\n"), None,
     "import", "`from pandas import read_csv` is not allowed: it reads or writes files"),
    ("nada_dataframe_to_csv", _nada("    pd.DataFrame({'b': x}).to_csv('/tmp/llmabr-leak.csv')\n"), None, "attribute",
     "`.to_csv` is not allowed"),
    ("nada_series_to_pickle", _nada("    x.to_pickle('/tmp/llmabr-leak.pkl')\n"), None, "attribute", "`.to_pickle`"),
    ("nada_to_string_to_a_file", _nada("    pd.DataFrame({'b': x}).to_string(buf='/tmp/llmabr-leak.txt')\n"), None,
     "attribute", "with a destination writes a file"),
    ("nada_to_string_positional_path", _nada("    x.to_string('/tmp/llmabr-leak.txt')\n"), None, "attribute",
     "with a destination writes a file"),
    ("nada_pd_eval", _nada("    pd.eval('__import__(\"os\")')\n"), None, "attribute",
     "`.eval` is not allowed in a NADA state function: it evaluates code"),
    ("nada_dataframe_query", _nada("    pd.DataFrame({'b': x}).query('b > 0')\n"), None, "attribute", "`.query`"),
    ("nada_scipy_io_savemat", _nada("    scipy.io.savemat('/tmp/llmabr-leak.mat', {'b': 1})\n",
                                    SCIPY), None, "attribute", "`.io` is not allowed"),
    ("nada_import_scipy_io", _nada("    scipy.io.loadmat('/tmp/x.mat')\n", "import pandas as pd\nimport scipy.io\n"), None,
     "import", "`import scipy.io` is not allowed; a NADA design may use"),
    ("nada_from_scipy_io_import_loadmat", _nada("", "import pandas as pd\nfrom scipy.io import loadmat\n"), None,
     "import", "`from scipy.io import ...` is not allowed"),
    ("nada_from_scipy_import_io", _nada("", "import pandas as pd\nfrom scipy import io\n"), None, "import",
     "`from scipy import io` is not allowed"),
    ("nada_scipy_datasets", _nada("    scipy.datasets.face()\n", SCIPY), None,
     "attribute", "`.datasets` is not allowed in a NADA state function: it downloads data"),
    ("nada_scipy_unlisted_subpackage", _nada("    scipy.cluster.vq.kmeans(x, 2)\n", SCIPY),
     None, "attribute", "`scipy.cluster` is not allowed"),
    ("nada_scipy_low_level_callable", _nada("    scipy.LowLevelCallable(None)\n", SCIPY),
     None, "attribute", "`.LowLevelCallable`"),
    ("nada_import_pandas_io", _nada("", "import pandas as pd\nimport pandas.io\n"), None, "import",
     "`import pandas.io` is not allowed"),
    ("nada_pandas_io_attribute", _nada("    pd.io.pickle.read_pickle('/tmp/p')\n"), None, "attribute", "`.io`"),
    ("nada_pandas_private_module", _nada("    pd._libs.lib.is_scalar(1)\n"), None, "attribute",
     "private attribute `._libs`"),
    ("nada_scipy_private_module", _nada("", "import pandas as pd\nfrom scipy.stats import _stats_py\n"), None,
     "import", "from scipy.stats import _stats_py"),
    ("nada_private_attribute_of_a_result", _nada("    manager = x._mgr\n"), None, "attribute",
     "private attribute `._mgr` is not allowed in a NADA state function"),
    ("nada_apply_by_name", _nada("    x.apply('to_pickle', path='/tmp/llmabr-leak.pkl')\n"), None, "dispatch",
     "`.apply()` must be given a function"),
    ("nada_agg_computed_name", _nada("    name = 'to_' + 'csv'\n    x.agg(name, '/tmp/llmabr-leak.csv')\n"), None,
     "dispatch", "like getattr"),
    ("nada_agg_through_a_rebound_module", _nada("    np = pd.Series([0.0], name='to_' + 'csv')\n    x.agg(np.name, '/tmp/x')\n"),
     None, "dispatch", "`.agg()` must be given a function"),
    ("nada_agg_kwargs_smuggled", _nada("    x.agg(**{'func': 'to_' + 'json'})\n"), None, "dispatch",
     "pass the function explicitly"),
    ("nada_named_aggregation_by_name", _nada("    pd.DataFrame({'b': x}).agg(out=('b', 'to_json'))\n"), None,
     "dispatch", "`.agg()` must be given a function"),
    ("nada_set_option_plotting_backend", _nada("    pd.set_option('plotting.backend', 'os')\n"), None, "attribute",
     "`.set_option` is not allowed in a NADA state function: it changes pandas' process-wide options"),
    ("nada_options_assignment", _nada("    pd.options.plotting.backend = 'os'\n"), None, "attribute", "`.options`"),
    ("nada_plot", _nada("    x.plot()\n"), None, "attribute", "`.plot`"),
    ("nada_getattr_on_pandas", _nada("    getattr(pd, 'read_' + 'csv')('/etc/passwd')\n"), None, "name", "`getattr`"),
    ("nada_import_signal_module", _nada("    signal.alarm(1)\n", "import pandas as pd\nimport signal\n"), None,
     "import", "`import signal` is not allowed"),
    ("torch_design_imports_pandas", _state("    return {}\n", "import torch\nimport pandas as pd\n"), None, "import",
     "`import pandas` is not allowed; designs may import only torch"),
    ("nada_net_imports_scipy", _nada(""), "import scipy\nimport torch\nfrom torch import nn\n\n\n"
     "class Trunk(nn.Module):\n    pass\n", "import", "`import scipy` is not allowed"),
]

# The same refusals when S0 is bypassed: the loader's restricted import and its view of the
# library modules (what a design that reached the runtime would meet). (id, source, fragment).
NADA_RUNTIME_CASES = [
    ("read_csv", _nada("    pd.read_csv('/etc/passwd')\n"), "pandas.read_csv is not available to designs"),
    ("read_pickle", _nada("    pd.read_pickle('/tmp/payload.pkl')\n"), "pandas.read_pickle is not available"),
    ("pd_eval", _nada("    pd.eval('1 + 1')\n"), "pandas.eval is not available"),
    ("pandas_io", _nada("    pd.io.pickle.read_pickle('/tmp/p')\n"), "pandas.io is not available"),
    ("pandas_private", _nada("    pd._libs.lib.is_scalar(1)\n"), "pandas._libs is not available"),
    ("set_option", _nada("    pd.set_option('plotting.backend', 'os')\n"), "pandas.set_option is not available"),
    ("options", _nada("    pd.options.plotting.backend = 'os'\n"), "pandas.options is not available"),
    ("scipy_io", _nada("    scipy.io.savemat('/tmp/llmabr-leak.mat', {'b': 1})\n", SCIPY),
     "scipy.io is not available"),
    ("scipy_datasets", _nada("    scipy.datasets.face()\n", SCIPY),
     "scipy.datasets is not available"),
    ("scipy_unlisted_subpackage", _nada("    scipy.cluster.vq.kmeans(x, 2)\n", SCIPY),
     "scipy.cluster is not available to designs"),
    ("import_scipy_io", _nada("", "import pandas as pd\nimport scipy.io\n"), "import of 'scipy.io' is not allowed"),
    ("from_scipy_import_io", _nada("", "import pandas as pd\nfrom scipy import io\n"), "'from scipy import io' is not allowed"),
    ("import_pandas_io", _nada("", "import pandas as pd\nimport pandas.io\n"), "import of 'pandas.io' is not allowed"),
    ("from_pandas_import_read_csv", _nada("", "import pandas as pd\nfrom pandas import read_csv\n"),
     "'from pandas import read_csv' is not allowed"),
    ("patch_library", _nada("    pd.Series = None\n"), "designs may not change library modules"),
]

assert len({case[0] for case in S0_CASES}) == len(S0_CASES)
assert len({case[0] for case in NADA_S0_CASES}) == len(NADA_S0_CASES)
