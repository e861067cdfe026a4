#include "dag_graph.hpp"

#include <algorithm>
#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/depth_first_search.hpp>
#include <functional>
#include <queue>

namespace dagd::scheduler::graph {
namespace {

using BoostGraph = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS>;
using Vertex = boost::graph_traits<BoostGraph>::vertex_descriptor;
using Edge = boost::graph_traits<BoostGraph>::edge_descriptor;

// Boost copies visitors, so the state lives outside and the visitor holds pointers.
class CycleRecorder : public boost::default_dfs_visitor {
 public:
  CycleRecorder(std::vector<Vertex>* parent, std::vector<std::vector<size_t>>* cycles)
      : parent_(parent), cycles_(cycles) {}

  void tree_edge(Edge e, const BoostGraph& g) const { (*parent_)[target(e, g)] = source(e, g); }

  // A back edge u → v closes the cycle v → … → u → v along the DFS tree path.
  void back_edge(Edge e, const BoostGraph& g) const {
    Vertex from = source(e, g);
    Vertex to = target(e, g);
    std::vector<size_t> path{from};
    for (Vertex at = from; at != to; at = (*parent_)[at]) path.push_back((*parent_)[at]);
    std::reverse(path.begin(), path.end());  // to, …, from
    auto smallest = std::min_element(path.begin(), path.end());
    std::rotate(path.begin(), smallest, path.end());
    path.push_back(path.front());
    cycles_->push_back(std::move(path));
  }

 private:
  std::vector<Vertex>* parent_;
  std::vector<std::vector<size_t>>* cycles_;
};

}  // namespace

std::vector<std::vector<size_t>> FindCycles(const Adjacency& downstream) {
  BoostGraph g(downstream.size());
  for (size_t u = 0; u < downstream.size(); ++u) {
    for (size_t v : downstream[u]) boost::add_edge(u, v, g);
  }
  std::vector<Vertex> parent(downstream.size());
  for (size_t v = 0; v < parent.size(); ++v) parent[v] = v;
  std::vector<std::vector<size_t>> cycles;
  std::vector<boost::default_color_type> colors(downstream.size());
  boost::depth_first_search(
      g, CycleRecorder(&parent, &cycles),
      boost::make_iterator_property_map(colors.begin(), boost::get(boost::vertex_index, g)));
  return cycles;
}

std::vector<size_t> StableTopologicalOrder(const Adjacency& downstream) {
  std::vector<size_t> in_degree(downstream.size(), 0);
  for (const auto& targets : downstream) {
    for (size_t v : targets) ++in_degree[v];
  }
  std::priority_queue<size_t, std::vector<size_t>, std::greater<>> ready;
  for (size_t v = 0; v < in_degree.size(); ++v) {
    if (in_degree[v] == 0) ready.push(v);
  }
  std::vector<size_t> order;
  order.reserve(downstream.size());
  while (!ready.empty()) {
    size_t u = ready.top();
    ready.pop();
    order.push_back(u);
    for (size_t v : downstream[u]) {
      if (--in_degree[v] == 0) ready.push(v);
    }
  }
  return order;
}

}  // namespace dagd::scheduler::graph
