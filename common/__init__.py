"""Code shared by every Herald service.

Configuration options, the RPC plumbing between the edge services and the
storage workers, typed errors, request context and time helpers live here.
Nothing in this package may import from a service package
(``herald.api``, ``herald.storage``, ``herald.ws_gateway``): services depend
on ``common``, never the other way round.
"""

import warnings

# oslo.messaging imports oslo.service and oslo.utils, which import eventlet and
# warn that it is deprecated. Herald never uses eventlet (Tornado + threads), so
# the warning only alarms operators reading the logs.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
warnings.filterwarnings("ignore", message=r"eventletutils module is deprecated")
