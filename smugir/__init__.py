"""smugir."""

from smugir.isolation import pin_z3_library

pin_z3_library()  # before anything imports z3 (pySMT does): its library only from its package
