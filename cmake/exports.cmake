# Generate libich.so's version script and its list of exported symbols from
# the public headers: every function declared `ICH_API ... ich_name(`.
#   cmake -DHEADER_DIR=include/ich -DTEMPLATE=cmake/libich.map.in
#         -DMAP=build/libich/libich.map -DLIST=build/libich/libich.exports
#         -P cmake/exports.cmake
# LIST holds every symbol libich.so must export, one per line, sorted (the
# ICH_API functions and the four GDCM codec functions of the template):
# scripts/test.sh compares it with `nm -D` exactly.
file(GLOB headers "${HEADER_DIR}/*.h")
list(SORT headers)
set(names "")
foreach(header IN LISTS headers)
  file(READ "${header}" text)
  # The name is on the ICH_API line in every header (a declaration may
  # continue its parameters on the next lines).
  string(REGEX MATCHALL "ICH_API[^;({}#]*[ *]ich_[a-z0-9_]+[ ]*\\(" found "${text}")
  foreach(declaration IN LISTS found)
    string(REGEX MATCH "ich_[a-z0-9_]+[ ]*\\($" name "${declaration}")
    string(REGEX REPLACE "[ ]*\\($" "" name "${name}")
    list(APPEND names "${name}")
  endforeach()
endforeach()
list(REMOVE_DUPLICATES names)
list(SORT names)
list(LENGTH names count)
if(count LESS 100)
  message(FATAL_ERROR "exports.cmake: only ${count} ICH_API functions found in ${HEADER_DIR}")
endif()
set(ICH_EXPORTS "")
foreach(name IN LISTS names)
  string(APPEND ICH_EXPORTS "    ${name};\n")
endforeach()
string(REGEX REPLACE "\n$" "" ICH_EXPORTS "${ICH_EXPORTS}")
configure_file("${TEMPLATE}" "${MAP}" @ONLY)
# The template's own global names (the GDCM codec functions, indented by
# four spaces) join the list.
file(READ "${TEMPLATE}" template)
string(REGEX MATCHALL "\n    [A-Za-z_][A-Za-z0-9_]*" extra "${template}")
foreach(name IN LISTS extra)
  string(STRIP "${name}" name)
  list(APPEND names "${name}")
endforeach()
list(SORT names)
list(JOIN names "\n" text)
file(WRITE "${LIST}.tmp" "${text}\n")
file(COPY_FILE "${LIST}.tmp" "${LIST}" ONLY_IF_DIFFERENT)
file(REMOVE "${LIST}.tmp")
