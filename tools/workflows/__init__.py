"""ComfyUI's workflow format, as the shipped example workflows use it.

- ``format``: the UI format's node shapes (sockets, widgets, outputs) and a PaCo node's shape
  read from its V3 schema;
- ``core_nodes``: the shapes of the ComfyUI core nodes the workflows may use (a hand table);
- ``node_layouts``: every node's shape, PaCo nodes read through the ComfyUI test double;
- ``builder``: ``WorkflowBuilder``, which places nodes in columns and writes a UI-format graph;
- ``api_prompt``: a UI-format workflow -> the API prompt ``POST /prompt`` takes;
- ``specs``: the shipped workflows' content (one module per workflow or group) and their registry.

Imports point one way: ``specs`` -> the format modules. ``python -m tools.workflow_convert``
writes ``workflows/*.json`` from the specs.
"""
