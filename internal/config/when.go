package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/rcrouter/rcrouter/internal/event"
)

// CompileWhen compiles a route's `when` expression against the normalized
// event: names are event.Event's `expr` tags, and the result must be a
// boolean. It is the one place `when` is compiled, so validation and the
// router accept exactly the same expressions.
func CompileWhen(src string) (*vm.Program, error) {
	return expr.Compile(src, expr.Env(event.Event{}), expr.AsBool(), expr.Patch(lifecycleAsString{}))
}

// lifecycleAsString wraps every value of type event.Lifecycle in string():
// expr neither compiles `lifecycle == "renewed"` (a named string type is not
// a string to its checker) nor finds it `in ["renewed"]` at run time, and
// both are what anyone would write.
type lifecycleAsString struct{}

func (lifecycleAsString) Visit(node *ast.Node) {
	if (*node).Type() == reflect.TypeFor[event.Lifecycle]() {
		ast.Patch(node, &ast.BuiltinNode{Name: "string", Arguments: []ast.Node{*node}})
	}
}

// ExprMessage formats an expr compile or run-time error on one line, with
// expr's position: "unknown name typ (1:1)". expr's own Error adds a caret
// line below, which does not fit the one-problem-per-line format.
func ExprMessage(err error) string {
	var fe *file.Error
	if !errors.As(err, &fe) {
		return firstLine(err.Error())
	}
	msg := firstLine(fe.Message)
	if fe.Line > 0 {
		msg = fmt.Sprintf("%s (%d:%d)", msg, fe.Line, fe.Column+1)
	}
	return msg
}

// exprLine is the line of the expression that err is about, or 0.
func exprLine(err error) int {
	var fe *file.Error
	if errors.As(err, &fe) {
		return fe.Line
	}
	return 0
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func durationString(ns int64) string { return time.Duration(ns).String() }
