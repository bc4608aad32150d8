// Shape specialization: binds the graph inputs to concrete shapes, infers every value's dtype
// and shape through the operators' factories, and folds everything computable at plan time
// (shape subgraphs, Constant nodes, weight transforms) into constants.
#pragma once
#include <map>
#include <string>

#include "tessera/graph.h"
#include "tessera/thread_pool.h"

namespace tessera {

struct SpecializeReport {
  int nodes_folded = 0;
};

// Graph inputs named in `input_values` become constants of the plan (value specialization,
// for inputs that determine shapes, such as a Reshape target fed as a graph input).
SpecializeReport specialize_graph(Graph& graph, const std::map<std::string, Shape>& input_shapes,
                                  ThreadPool& pool,
                                  const std::map<std::string, Tensor>& input_values = {});

// Concrete shapes for every graph input: given ones, else the declared shape with unknown
// symbolic dims set to `default_dim`. Throws when an input has no declared rank.
std::map<std::string, Shape> default_input_shapes(const Graph& graph,
                                                  const std::map<std::string, Shape>& given = {},
                                                  int64_t default_dim = 1);

}  // namespace tessera
