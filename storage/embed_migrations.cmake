# Writes OUT: a C++ file defining dagd::storage::EmbeddedMigrations() from the FILES list.
# File names must start with their version number: 001_initial.sql.
set(content "// Generated from storage/migrations/*.sql. Do not edit.\n#include <string_view>\n#include <vector>\n#include \"migrations.hpp\"\nnamespace dagd::storage {\nconst std::vector<Migration>& EmbeddedMigrations() {\n  static const std::vector<Migration> kMigrations = {\n")
foreach(file IN LISTS FILES)
  get_filename_component(name ${file} NAME_WE)
  string(REGEX MATCH "^[0-9]+" version ${name})
  math(EXPR version "${version}")
  file(READ ${file} sql)
  string(APPEND content "    {${version}, \"${name}\", R\"dagdsql(${sql})dagdsql\"},\n")
endforeach()
string(APPEND content "  };\n  return kMigrations;\n}\n}  // namespace dagd::storage\n")
file(WRITE ${OUT} "${content}")
