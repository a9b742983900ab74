"""The modules every stage imports: params and their typed sections, config reading, errors,
atomic file writes, the command-line wrapper, the allocator setting and the torchvision shim.
One package, so each DVC stage lists it once (``pipeline/core``)."""
