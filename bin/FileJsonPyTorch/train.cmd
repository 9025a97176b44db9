@echo off
rem train.cmd: lfengine drop-in for the GATE Learning Framework's PyTorch wrapper (lfengine 0.1.0).
rem GATE runs: train.cmd METAFILE MODELPREFIX [OPTION ...]
rem Interpreter: %PYTHON_BIN%, or when it is empty the recorded one, then python.
setlocal
set "RECORDED_PYTHON="
if not defined LFENGINE_HOME set "LFENGINE_HOME="
if "%~2"=="" goto usage
set "PY=%PYTHON_BIN%"
if defined PY set "PY=%PY:"=%"
if not defined PY if defined RECORDED_PYTHON if exist "%RECORDED_PYTHON%" set "PY=%RECORDED_PYTHON%"
if not defined PY set "PY=python"
set "LFENGINE_INIT=%LFENGINE_HOME%\lfengine\__init__.py"
if defined LFENGINE_HOME if exist "%LFENGINE_INIT%" set "PYTHONPATH=%LFENGINE_HOME%;%PYTHONPATH%"
set "PYTHONSAFEPATH=1"
"%PY%" -m lfengine gate-train %*
exit /b %ERRORLEVEL%
:usage
echo usage: train.cmd METAFILE MODELPREFIX [OPTION ...] 1>&2
exit /b 1
