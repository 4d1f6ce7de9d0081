"""Finding 1: a module alias hides numpy's file writer from a check that looks for `np.save`."""
import numpy


class Alias:
    name = "numpy_alias_save"

    def plan(self, ctx):
        np = numpy
        np.save("/tmp/bilevel-hostile-numpy.npy", np.zeros(4))
        return {"guidance": "saved"}
