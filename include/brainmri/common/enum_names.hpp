#pragma once
// The one way a choice option is named: an enum with a table of its names, printed with
// name_of() and read with parse_enum(), which names the valid choices when the text is none of
// them. A choice is declared once by specializing EnumNames next to its enum:
//
//   enum class Precision { Auto, Fp32, Bf16 };
//   template <> struct EnumNames<training::Precision> {
//     static constexpr std::string_view what = "precision";
//     static constexpr std::array names = {std::pair{training::Precision::Auto, std::string_view("auto")}, ...};
//   };

#include <array>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace brainmri {

template <typename Enum>
struct EnumNames;

template <typename Enum>
concept NamedEnum = requires {
  EnumNames<Enum>::names;
  EnumNames<Enum>::what;
};

template <NamedEnum Enum>
std::string name_of(Enum value) {
  for (const auto& [candidate, name] : EnumNames<Enum>::names) {
    if (candidate == value) return std::string(name);
  }
  throw std::logic_error(std::string(EnumNames<Enum>::what) + ": a value without a name");
}

// "a, b or c"
template <NamedEnum Enum>
std::string enum_choices() {
  std::string text;
  const auto& names = EnumNames<Enum>::names;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) text += i + 1 == names.size() ? " or " : ", ";
    text += names[i].second;
  }
  return text;
}

// Throws std::invalid_argument ("precision must be auto, fp32 or bf16, got 'fp16'").
template <NamedEnum Enum>
Enum parse_enum(std::string_view text) {
  for (const auto& [value, name] : EnumNames<Enum>::names) {
    if (name == text) return value;
  }
  throw std::invalid_argument(std::string(EnumNames<Enum>::what) + " must be " + enum_choices<Enum>() + ", got '" +
                              std::string(text) + "'");
}

}  // namespace brainmri
