"""Analysis tasks: capture chosen processes with their own sampling rules for a while.

model.py holds the tasks and their validation (sans-IO, an injected clock); resolve.py turns
running tasks into the kernel filter and the capture thread's view (pure); controller.py puts
them to work against /proc and the capture source. The API is web/tasks_api.py; docs/tasks.md
tells the whole story.
"""
from l7scope.tasks.controller import TaskController
from l7scope.tasks.model import (Invalid, Rules, Selector, Task, TaskSpec, TaskTable, parse_body,
                                 parse_task)

__all__ = ["Invalid", "Rules", "Selector", "Task", "TaskController", "TaskSpec", "TaskTable",
           "parse_body", "parse_task"]
