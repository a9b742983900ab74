"""Glue between the library and the stage scripts: what one stage computes, on typed inputs."""
