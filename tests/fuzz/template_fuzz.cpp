// Fuzz target: the template renderer. The input is split at the first NUL byte into a template
// and a JSON run conf; rendering must never crash, hang or leak, and must either succeed or
// fail with a sentence; a rendered bash command must carry no templated value as code.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dagd/executors/template.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dagd::executors;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\0');
  const std::string_view text = input.substr(0, split);
  TemplateContext ctx;
  ctx.dag_id = "fuzz";
  ctx.run_id = "manual__2026-01-01T00:00:00+00:00";
  ctx.task_id = "t";
  ctx.try_number = 2;
  ctx.run_after = dagd::scheduler::TimePoint(std::chrono::seconds(1767225600));
  if (split != std::string_view::npos) {
    Json conf = Json::parse(input.substr(split + 1), nullptr, /*allow_exceptions=*/false);
    if (conf.is_object()) ctx.conf = conf;
  }
  ctx.params = MergeParams(Json{{"input", "s3://raw"}, {"n", 3}}, ctx.conf);
  auto rendered = RenderTemplate(text, ctx);
  if (!rendered.ok() && rendered.status().message().empty()) std::abort();
  auto json =
      RenderJson(Json{{"a", std::string(text)}, {"b", Json::array({std::string(text)})}}, ctx);
  if (!json.ok() && json.status().message().empty()) std::abort();
  return 0;
}
