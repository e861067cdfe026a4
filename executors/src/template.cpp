#include "dagd/executors/template.hpp"

#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <string>
#include <utility>

namespace dagd::executors {
namespace {

using scheduler::TimePoint;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

struct Civil {
  int year;
  unsigned month, day;
  long long seconds_of_day;
};

Civil ToCivil(TimePoint t) {
  const auto day = std::chrono::floor<std::chrono::days>(t);
  const std::chrono::year_month_day ymd{std::chrono::sys_days{day}};
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(t - day).count();
  return {static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
          static_cast<unsigned>(ymd.day()), secs};
}

std::string Ds(TimePoint t, bool dashes) {
  const Civil c = ToCivil(t);
  char buf[32];
  std::snprintf(buf, sizeof buf, dashes ? "%04d-%02u-%02u" : "%04d%02u%02u", c.year, c.month,
                c.day);
  return buf;
}

// Airflow's `ts`: logical_date.isoformat() for a UTC datetime.
std::string Ts(TimePoint t) {
  const Civil c = ToCivil(t);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02lld:%02lld:%02lld+00:00", c.year, c.month,
                c.day, c.seconds_of_day / 3600, c.seconds_of_day / 60 % 60, c.seconds_of_day % 60);
  return buf;
}

std::string Render(const Json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// Walks `root` along the dot-separated `path`; `name` is how the root is spelled in errors.
StatusOr<Json> Walk(const Json& root, std::string name, std::string_view path) {
  const Json* cur = &root;
  while (!path.empty()) {
    const size_t dot = path.find('.');
    const std::string_view key = path.substr(0, dot);
    path = dot == std::string_view::npos ? std::string_view{} : path.substr(dot + 1);
    if (key.empty()) return Status::InvalidArgument("empty key after " + name);
    if (cur->is_object()) {
      auto it = cur->find(std::string(key));
      if (it == cur->end()) {
        return Status::InvalidArgument(name + " has no key '" + std::string(key) + "'");
      }
      cur = &*it;
    } else if (cur->is_array()) {
      size_t index = 0;
      auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), index);
      if (ec != std::errc() || end != key.data() + key.size()) {
        return Status::InvalidArgument(name + " is a list; '" + std::string(key) +
                                       "' is not an index");
      }
      if (index >= cur->size()) {
        return Status::InvalidArgument(name + " has no index " + std::string(key) + " (size " +
                                       std::to_string(cur->size()) + ")");
      }
      cur = &(*cur)[index];
    } else {
      return Status::InvalidArgument(name + " is not an object (it is " + cur->dump() +
                                     "), so it has no key '" + std::string(key) + "'");
    }
    name += ".";
    name += key;
  }
  return *cur;
}

// `path` after `prefix` when `expr` is `prefix` or `prefix.<path>`.
std::optional<std::string_view> After(std::string_view expr, std::string_view prefix) {
  if (expr == prefix) return std::string_view{};
  if (expr.size() > prefix.size() + 1 && expr.substr(0, prefix.size()) == prefix &&
      expr[prefix.size()] == '.') {
    return expr.substr(prefix.size() + 1);
  }
  return std::nullopt;
}

StatusOr<std::string> Time(const std::optional<TimePoint>& t, std::string_view what) {
  if (!t) return Status::InvalidArgument("the run has no " + std::string(what));
  return scheduler::FormatRfc3339(*t);
}

StatusOr<std::string> Evaluate(std::string_view expr, const TemplateContext& ctx) {
  if (auto path = After(expr, "params")) {
    auto v = Walk(ctx.params, "params", *path);
    if (!v.ok()) return v.status();
    return Render(*v);
  }
  for (std::string_view conf_name : {"dag_run.conf", "conf"}) {
    if (auto path = After(expr, conf_name)) {
      auto v = Walk(ctx.conf, std::string(conf_name), *path);
      if (!v.ok()) return v.status();
      return Render(*v);
    }
  }
  const std::optional<TimePoint> date = ctx.logical_date ? ctx.logical_date : ctx.run_after;
  if (expr == "ds" || expr == "ds_nodash" || expr == "ts") {
    if (!date) return Status::InvalidArgument("the run has neither logical_date nor run_after");
    if (expr == "ts") return Ts(*date);
    return Ds(*date, expr == "ds");
  }
  if (expr == "logical_date") return Time(ctx.logical_date, "logical_date");
  if (expr == "data_interval_start") return Time(ctx.data_interval_start, "data_interval_start");
  if (expr == "data_interval_end") return Time(ctx.data_interval_end, "data_interval_end");
  if (expr == "run_id" || expr == "dag_run.run_id") return ctx.run_id;
  if (expr == "dag_id" || expr == "dag.dag_id" || expr == "dag_run.dag_id") return ctx.dag_id;
  if (expr == "task_id" || expr == "task.task_id" || expr == "ti.task_id") return ctx.task_id;
  if (expr == "ti.try_number") return std::to_string(ctx.try_number);
  return Status::InvalidArgument("unknown expression '" + std::string(expr) + "'");
}

Status Located(std::string_view whole, const TemplateContext& ctx, const Status& error) {
  return Status::InvalidArgument("template '" + std::string(whole) + "' in task '" + ctx.task_id +
                                 "': " + error.message());
}

StatusOr<Json> RenderValue(const Json& value, const TemplateContext& ctx) {
  if (value.is_string()) {
    auto s = RenderTemplate(value.get_ref<const std::string&>(), ctx);
    if (!s.ok()) return s.status();
    return Json(std::move(*s));
  }
  if (value.is_object() || value.is_array()) {
    Json out = value;
    for (auto& [key, item] : out.items()) {
      auto r = RenderValue(item, ctx);
      if (!r.ok()) return r.status();
      item = std::move(*r);
    }
    return out;
  }
  return value;
}

// A templated value that bash receives as a variable. bash never parses a variable's value as
// code, except where it evaluates the value as an arithmetic expression or a variable name
// ($(( )), (( )), let, [[ -gt ]], ${!x}, [[ -v ]]): there an array subscript is expanded, so
// "a[$(id)]" runs `id`. Every such attack needs an expansion ('$' or '`') after a '[' and before
// the ']' that closes it, which plain values do not hold; those values are refused, as are NUL
// bytes (an environment cannot hold one).
Status CheckBashValue(std::string_view value) {
  if (value.find('\0') != std::string_view::npos) {
    return Status::InvalidArgument("its value holds a NUL byte, which bash cannot be given");
  }
  bool expansion_in_subscript = false;
  for (size_t open = value.find('['); open != std::string_view::npos && !expansion_in_subscript;
       open = value.find('[', open + 1)) {
    const size_t next = value.find_first_of("$`]", open + 1);
    expansion_in_subscript = next != std::string_view::npos && value[next] != ']';
  }
  if (expansion_in_subscript) {
    return Status::InvalidArgument(
        "its value holds '$' or '`' inside '[...]', which bash runs as code wherever it "
        "evaluates a value as arithmetic or as a name ($(( )), (( )), let, [[ -gt ]]); such "
        "values are refused");
  }
  return Status::Ok();
}

// Copies the text outside `{{ ... }}` to `out` and hands each rendered expression to `emit`
// (which appends whatever stands for it). Errors name the template and the task.
template <typename Emit>
Status Scan(std::string_view text, const TemplateContext& ctx, std::string& out, Emit emit) {
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t open = text.find("{{", pos);
    if (open == std::string_view::npos) {
      out.append(text.substr(pos));
      break;
    }
    out.append(text.substr(pos, open - pos));
    const size_t close = text.find("}}", open + 2);
    if (close == std::string_view::npos) {
      return Located(text.substr(open), ctx, Status::InvalidArgument("no closing '}}'"));
    }
    const std::string_view whole = text.substr(open, close + 2 - open);
    const std::string_view expr = Trim(text.substr(open + 2, close - open - 2));
    if (expr.empty()) return Located(whole, ctx, Status::InvalidArgument("empty expression"));
    auto value = Evaluate(expr, ctx);
    if (!value.ok()) return Located(whole, ctx, value.status());
    if (Status s = emit(std::move(*value)); !s.ok()) return Located(whole, ctx, s);
    pos = close + 2;
  }
  return Status::Ok();
}

}  // namespace

Json MergeParams(const Json& dag_params, const Json& conf) {
  Json out = dag_params.is_object() ? dag_params : Json::object();
  if (conf.is_object()) {
    for (const auto& [key, value] : conf.items()) out[key] = value;
  }
  return out;
}

TemplateContext MakeTemplateContext(const scheduler::TaskAssignment& a) {
  TemplateContext ctx;
  ctx.dag_id = a.run.dag_id.empty() && a.dag ? a.dag->dag_id : a.run.dag_id;
  ctx.run_id = a.run.run_id;
  ctx.task_id = a.task().task_id;
  ctx.try_number = a.try_number;
  ctx.params = MergeParams(a.dag ? a.dag->params : Json::object(), a.run.conf);
  ctx.conf = a.run.conf.is_null() ? Json::object() : a.run.conf;
  ctx.logical_date = a.run.logical_date;
  ctx.run_after = a.run.run_after;
  ctx.data_interval_start = a.run.data_interval_start;
  ctx.data_interval_end = a.run.data_interval_end;
  return ctx;
}

StatusOr<std::string> RenderBashValue(std::string_view text, const TemplateContext& ctx) {
  std::string out;
  out.reserve(text.size());
  Status s = Scan(text, ctx, out, [&out](std::string value) {
    if (Status safe = CheckBashValue(value); !safe.ok()) return safe;
    out.append(value);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

StatusOr<std::string> RenderTemplate(std::string_view text, const TemplateContext& ctx) {
  std::string out;
  out.reserve(text.size());
  Status s = Scan(text, ctx, out, [&out](std::string value) {
    out.append(value);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

StatusOr<BashTemplate> RenderBashCommand(std::string_view text, const TemplateContext& ctx) {
  BashTemplate result;
  result.command.reserve(text.size());
  Status s = Scan(text, ctx, result.command, [&result](std::string value) {
    const std::string name =
        std::string(kTemplateVariablePrefix) + std::to_string(result.variables.size() + 1);
    if (Status safe = CheckBashValue(value); !safe.ok()) return safe;
    result.command += "${" + name + "}";
    result.variables.emplace_back(name, std::move(value));
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return result;
}

std::string IsoFormat(TimePoint t) {
  std::string out = Ts(t);
  const auto us = (t - std::chrono::floor<std::chrono::seconds>(t)).count();
  if (us != 0) {
    char buf[16];
    std::snprintf(buf, sizeof buf, ".%06lld", static_cast<long long>(us));
    out.insert(19, buf);
  }
  return out;
}

StatusOr<Json> RenderJson(const Json& value, const TemplateContext& ctx) {
  return RenderValue(value, ctx);
}

}  // namespace dagd::executors
