"""Helpers shared by the test modules; fixtures stay in ``tests/conftest.py``.

========================  ==========================================================
``support.loops``         drive a loop from a test: ``run_until``, ``advance`` (fake clock)
``support.peers``         ``Peer``, the one raw-socket client; ``free_port``,
                          ``has_ipv6_loopback``
``support.recorders``     protocols that record what happens to them (``Recorder``,
                          ``EventRecorder``) or stream a payload (``StreamingClient``);
                          ``random_payload``
``support.processes``     ``python -m reactor`` in a subprocess (``start_cli``,
                          ``run_cli``), threads, CPU time and open fds
``support.certs``         TLS contexts built from ``tests/certs/``
========================  ==========================================================

A test module imports from here and from conftest fixtures, never from
another test module.
"""
