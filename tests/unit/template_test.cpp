#include "dagd/executors/template.hpp"

#include <gtest/gtest.h>

#include <memory>

#include "dagd/scheduler/dag.hpp"
#include "dagd/scheduler/ports.hpp"
#include "dagd/scheduler/time.hpp"

namespace dagd::executors {
namespace {

using scheduler::TimePoint;

TimePoint At(int y, unsigned m, unsigned d, int hh, int mm, int ss) {
  const auto day = std::chrono::sys_days{std::chrono::year{y} / m / d};
  return std::chrono::time_point_cast<std::chrono::microseconds>(
      day + std::chrono::hours(hh) + std::chrono::minutes(mm) + std::chrono::seconds(ss));
}

TemplateContext Context() {
  TemplateContext ctx;
  ctx.dag_id = "etl";
  ctx.run_id = "manual__2026-01-02";
  ctx.task_id = "load";
  ctx.try_number = 2;
  ctx.params = Json{{"who", "world"},
                    {"n", 7},
                    {"nested", {{"a", {{"b", "deep"}}}}},
                    {"list", {"zero", "one"}},
                    {"flag", true}};
  ctx.conf = Json{{"x", "from-conf"}, {"obj", {{"k", 1}}}};
  ctx.logical_date = At(2026, 1, 2, 3, 4, 5);
  ctx.run_after = At(2026, 3, 4, 0, 0, 0);
  ctx.data_interval_start = At(2026, 1, 1, 0, 0, 0);
  ctx.data_interval_end = At(2026, 1, 2, 0, 0, 0);
  return ctx;
}

std::string Render(std::string_view text, const TemplateContext& ctx = Context()) {
  auto r = RenderTemplate(text, ctx);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : std::string("<error>");
}

std::string ErrorOf(std::string_view text, const TemplateContext& ctx = Context()) {
  auto r = RenderTemplate(text, ctx);
  EXPECT_FALSE(r.ok()) << "rendered as '" << (r.ok() ? *r : "") << "'";
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

TEST(Template, TextWithoutTemplatesIsCopiedVerbatim) {
  EXPECT_EQ(Render("echo hello } { }"), "echo hello } { }");
  EXPECT_EQ(Render(""), "");
}

TEST(Template, ParamsRenderStringsAsTextAndOtherJsonAsDump) {
  EXPECT_EQ(Render("hello {{ params.who }}!"), "hello world!");
  EXPECT_EQ(Render("{{ params.n }}"), "7");
  EXPECT_EQ(Render("{{ params.flag }}"), "true");
  EXPECT_EQ(Render("{{ params.nested.a }}"), R"({"b":"deep"})");
}

TEST(Template, ParamsWalkNestedObjectsAndArrayIndices) {
  EXPECT_EQ(Render("{{ params.nested.a.b }}"), "deep");
  EXPECT_EQ(Render("{{ params.list.1 }}"), "one");
}

TEST(Template, SpacesInsideBracesAreOptional) {
  EXPECT_EQ(Render("{{params.who}}-{{   params.who   }}"), "world-world");
}

TEST(Template, SeveralTemplatesInOneString) {
  EXPECT_EQ(Render("{{ dag_id }}/{{ run_id }}/{{ task_id }}/{{ ti.try_number }}"),
            "etl/manual__2026-01-02/load/2");
}

TEST(Template, ConfIsReachableAsDagRunConfAndConf) {
  EXPECT_EQ(Render("{{ dag_run.conf.x }}"), "from-conf");
  EXPECT_EQ(Render("{{ conf.x }}"), "from-conf");
  EXPECT_EQ(Render("{{ conf.obj.k }}"), "1");
  EXPECT_EQ(Render("{{ dag_run.conf }}"), R"({"obj":{"k":1},"x":"from-conf"})");
}

TEST(Template, DatesComeFromTheLogicalDate) {
  EXPECT_EQ(Render("{{ ds }}"), "2026-01-02");
  EXPECT_EQ(Render("{{ ds_nodash }}"), "20260102");
  EXPECT_EQ(Render("{{ ts }}"), "2026-01-02T03:04:05+00:00");
  EXPECT_EQ(Render("{{ logical_date }}"), "2026-01-02T03:04:05Z");
}

TEST(Template, DsFallsBackToRunAfterWhenLogicalDateIsNull) {
  TemplateContext ctx = Context();
  ctx.logical_date.reset();
  EXPECT_EQ(Render("{{ ds }} {{ ds_nodash }} {{ ts }}", ctx),
            "2026-03-04 20260304 2026-03-04T00:00:00+00:00");
}

TEST(Template, DsWithoutLogicalDateOrRunAfterIsAnError) {
  TemplateContext ctx = Context();
  ctx.logical_date.reset();
  ctx.run_after.reset();
  EXPECT_EQ(ErrorOf("{{ ds }}", ctx),
            "template '{{ ds }}' in task 'load': the run has neither logical_date nor run_after");
}

TEST(Template, NullLogicalDateIsAnErrorWhenAskedForDirectly) {
  TemplateContext ctx = Context();
  ctx.logical_date.reset();
  EXPECT_EQ(ErrorOf("{{ logical_date }}", ctx),
            "template '{{ logical_date }}' in task 'load': the run has no logical_date");
}

TEST(Template, DataIntervalBoundsRenderAsRfc3339) {
  EXPECT_EQ(Render("{{ data_interval_start }}..{{ data_interval_end }}"),
            "2026-01-01T00:00:00Z..2026-01-02T00:00:00Z");
  TemplateContext ctx = Context();
  ctx.data_interval_end.reset();
  EXPECT_EQ(ErrorOf("{{ data_interval_end }}", ctx),
            "template '{{ data_interval_end }}' in task 'load': the run has no data_interval_end");
}

TEST(Template, IdsHaveTheirAirflowSpellings) {
  EXPECT_EQ(Render("{{ dag.dag_id }} {{ dag_id }}"), "etl etl");
  EXPECT_EQ(Render("{{ task.task_id }} {{ task_id }}"), "load load");
  EXPECT_EQ(Render("{{ run_id }} {{ dag_run.run_id }}"), "manual__2026-01-02 manual__2026-01-02");
  EXPECT_EQ(Render("{{ ti.try_number }}"), "2");
}

TEST(Template, MissingParamNamesTheTemplateTheTaskAndTheKey) {
  EXPECT_EQ(ErrorOf("echo {{ params.nope }}"),
            "template '{{ params.nope }}' in task 'load': params has no key 'nope'");
  EXPECT_EQ(ErrorOf("{{ params.nested.a.zz }}"),
            "template '{{ params.nested.a.zz }}' in task 'load': params.nested.a has no key 'zz'");
  EXPECT_EQ(ErrorOf("{{ dag_run.conf.who }}"),
            "template '{{ dag_run.conf.who }}' in task 'load': dag_run.conf has no key 'who'");
}

TEST(Template, WalkingIntoAScalarOrPastAnArrayIsAnError) {
  EXPECT_NE(ErrorOf("{{ params.who.x }}").find("params.who is not an object"), std::string::npos);
  EXPECT_NE(ErrorOf("{{ params.list.5 }}").find("params.list has no index 5"), std::string::npos);
  EXPECT_NE(ErrorOf("{{ params.list.x }}").find("'x' is not an index"), std::string::npos);
}

TEST(Template, UnknownExpressionIsAnError) {
  EXPECT_EQ(ErrorOf("{{ foo }}"), "template '{{ foo }}' in task 'load': unknown expression 'foo'");
  EXPECT_EQ(ErrorOf("{{ params.who | upper }}").find("template '{{ params.who | upper }}'"), 0u);
  EXPECT_EQ(ErrorOf("{{ paramsx }}"),
            "template '{{ paramsx }}' in task 'load': unknown expression 'paramsx'");
  EXPECT_EQ(ErrorOf("{{ params. }}"),
            "template '{{ params. }}' in task 'load': unknown expression 'params.'");
  EXPECT_EQ(ErrorOf("{{ params..who }}"),
            "template '{{ params..who }}' in task 'load': empty key after params");
}

TEST(Template, UnterminatedAndEmptyTemplatesAreErrors) {
  EXPECT_EQ(ErrorOf("echo {{ params.who"),
            "template '{{ params.who' in task 'load': no closing '}}'");
  EXPECT_EQ(ErrorOf("{{ }}"), "template '{{ }}' in task 'load': empty expression");
}

TEST(Template, RenderJsonRendersEveryNestedStringAndKeepsTheRest) {
  const Json in = {{"path", "{{ params.who }}/{{ ds }}"},
                   {"n", 3},
                   {"list", {"{{ task_id }}", 1, nullptr}},
                   {"{{ not_a_key_template }}", {{"deep", "{{ conf.x }}"}}}};
  auto out = RenderJson(in, Context());
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(*out, (Json{{"path", "world/2026-01-02"},
                        {"n", 3},
                        {"list", {"load", 1, nullptr}},
                        {"{{ not_a_key_template }}", {{"deep", "from-conf"}}}}));
}

TEST(Template, RenderJsonReportsTheFirstBadTemplate) {
  auto out = RenderJson(Json{{"a", {{"b", "{{ params.nope }}"}}}}, Context());
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().message(),
            "template '{{ params.nope }}' in task 'load': params has no key 'nope'");
}

TEST(Template, RunConfOverridesParamsOfTheSameName) {
  const Json merged = MergeParams(Json{{"who", "world"}, {"keep", 1}}, Json{{"who", "me"}});
  EXPECT_EQ(merged, (Json{{"who", "me"}, {"keep", 1}}));
  EXPECT_EQ(MergeParams(Json{{"a", 1}}, Json()), (Json{{"a", 1}}));
  EXPECT_EQ(MergeParams(Json{{"a", 1}}, Json::array({1})), (Json{{"a", 1}}));
}

TEST(Template, ContextOfAnAssignmentMergesConfIntoParams) {
  auto dag = std::make_shared<scheduler::Dag>();
  dag->dag_id = "example_chain";
  dag->params = Json{{"who", "world"}};
  scheduler::TaskSpec task;
  task.task_id = "a";
  task.operator_name = "bash";
  dag->tasks.push_back(task);
  scheduler::TaskAssignment a;
  a.dag = dag;
  a.task_index = 0;
  a.run.dag_id = "example_chain";
  a.run.run_id = "r1";
  a.run.conf = Json{{"who", "me"}};
  a.try_number = 3;
  const TemplateContext ctx = MakeTemplateContext(a);
  EXPECT_EQ(Render("hello {{ params.who }} {{ dag_run.conf.who }} {{ dag_id }} {{ task_id }} "
                   "{{ run_id }} {{ ti.try_number }}",
                   ctx),
            "hello me me example_chain a r1 3");
}

}  // namespace
}  // namespace dagd::executors

namespace dagd::executors {
namespace {

StatusOr<BashTemplate> RenderBash(std::string_view text, const Json& conf) {
  TemplateContext ctx = Context();
  ctx.conf = conf;
  ctx.params = MergeParams(ctx.params, conf);
  return RenderBashCommand(text, ctx);
}

TEST(BashTemplate, EveryExpressionBecomesAVariableReferenceAndItsValueAVariable) {
  auto r =
      RenderBash("echo \"{{ params.who }}\" {{ run_id }}-{{ params.who }}; ls", Json::object());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->command,
            "echo \"${AIRFLOW_TEMPLATE_1}\" ${AIRFLOW_TEMPLATE_2}-${AIRFLOW_TEMPLATE_3}; ls");
  using Var = std::pair<std::string, std::string>;
  EXPECT_EQ(r->variables, (std::vector<Var>{{"AIRFLOW_TEMPLATE_1", "world"},
                                            {"AIRFLOW_TEMPLATE_2", "manual__2026-01-02"},
                                            {"AIRFLOW_TEMPLATE_3", "world"}}));
}

TEST(BashTemplate, HostileValuesNeverReachTheCommandText) {
  for (const std::string hostile :
       {"$(id > /tmp/x)", "`id`", "a; rm -rf /", "x\nid", "\"'", "${HOME}", "}}{{ run_id }}"}) {
    auto r = RenderBash("echo {{ dag_run.conf.who }}", Json{{"who", hostile}});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->command, "echo ${AIRFLOW_TEMPLATE_1}") << hostile;
    ASSERT_EQ(r->variables.size(), 1u);
    EXPECT_EQ(r->variables[0].second, hostile);
  }
}

TEST(BashTemplate, TextWithoutTemplatesIsUnchangedAndNeedsNoVariables) {
  auto r = RenderBash("echo '$HOME' } {", Json::object());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->command, "echo '$HOME' } {");
  EXPECT_TRUE(r->variables.empty());
}

TEST(BashTemplate, ErrorsNameTheTemplateLikeRenderTemplate) {
  auto r = RenderBash("touch {{ params.nope }}", Json::object());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "template '{{ params.nope }}' in task 'load': params has no key 'nope'");
}

TEST(BashTemplate, AValueWithANulByteIsAnError) {
  auto r = RenderBash("echo {{ conf.x }}", Json{{"x", std::string("a\0b", 3)}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("NUL byte"), std::string::npos) << r.status().message();
}

TEST(BashTemplate, AnArraySubscriptWithAnExpansionIsRefusedInCommandsAndEnvValues) {
  for (const std::string value : {"a[$(id)]", "x[`id`]", "[${HOME}]", "a[ $x ]", "a[1][$(id)]"}) {
    auto r = RenderBash("echo $(( {{ conf.x }} ))", Json{{"x", value}});
    ASSERT_FALSE(r.ok()) << value;
    EXPECT_NE(r.status().message().find("'$' or '`' inside '[...]'"), std::string::npos)
        << r.status().message();
    TemplateContext ctx = Context();
    ctx.conf = Json{{"x", value}};
    EXPECT_FALSE(RenderBashValue("n={{ conf.x }}", ctx).ok()) << value;
  }
  for (const std::string value : {"$5 [x]", "[1, 2]", "costs $3", "[x] costs 5$"}) {
    EXPECT_TRUE(RenderBash("echo {{ conf.x }}", Json{{"x", value}}).ok()) << value;
  }
}

TEST(BashTemplate, IsoFormatIsAirflowsSpelling) {
  EXPECT_EQ(IsoFormat(At(2026, 1, 2, 3, 4, 5)), "2026-01-02T03:04:05+00:00");
  EXPECT_EQ(IsoFormat(At(2026, 1, 2, 3, 4, 5) + std::chrono::microseconds(120)),
            "2026-01-02T03:04:05.000120+00:00");
}

}  // namespace
}  // namespace dagd::executors
