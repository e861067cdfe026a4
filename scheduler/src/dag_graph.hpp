// Graph algorithms over task indices, for the DAG parser. Vertices are 0..n-1 (tasks in file
// order); `downstream[u]` lists the v with an edge u → v (u must finish before v). Boost.Graph is
// confined to dag_graph.cpp so only one translation unit pays for it.
#pragma once

#include <cstddef>
#include <vector>

namespace dagd::scheduler::graph {

using Adjacency = std::vector<std::vector<size_t>>;

// Cycles found by a depth-first search, one per back edge (a self-edge is a 1-cycle). Each is a
// closed path [v0, v1, ..., v0] following edge direction, rotated to start at its smallest
// vertex. Deterministic: roots and edges are visited in index order. Empty when acyclic.
std::vector<std::vector<size_t>> FindCycles(const Adjacency& downstream);

// A topological order that keeps index order wherever the edges allow it (Kahn's algorithm
// taking the smallest ready index first). Precondition: acyclic.
std::vector<size_t> StableTopologicalOrder(const Adjacency& downstream);

}  // namespace dagd::scheduler::graph
